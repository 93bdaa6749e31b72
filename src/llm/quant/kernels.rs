//! Which kernel each weight type runs on each instruction set: the
//! dispatch tables [`super::QMatrix`] reads (dot products, prefill tiles,
//! pairs, unpacked and outer-product tiles).

use super::Isa;
use super::dot;
use super::formats::*;

macro_rules! pick {
    ($name:ident, $w:ty, $a:ty) => {
        pub fn $name(isa: Isa) -> fn(&[$w], &[$a]) -> f32 {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 | Isa::Avx2Vnni => super::x86::$name,
                #[cfg(target_arch = "aarch64")]
                Isa::Neon => super::arm::$name,
                #[cfg(target_arch = "aarch64")]
                Isa::NeonDotprod | Isa::NeonI8mm => super::arm::dotprod::$name,
                _ => dot::$name,
            }
        }
    };
}

pick!(q4_0, BlockQ4_0, BlockQ8_0);
pick!(q4_1, BlockQ4_1, BlockQ8_1);
pick!(q5_0, BlockQ5_0, BlockQ8_0);
pick!(q8_0, BlockQ8_0, BlockQ8_0);
pick!(q4_k, BlockQ4K, BlockQ8K);
pick!(q4_k_batched, BlockQ4K, BlockQ8K);
pick!(q6_k, BlockQ6K, BlockQ8K);
pick!(q6_k_batched, BlockQ6K, BlockQ8K);

macro_rules! pick_tile {
    ($name:ident, $w:ty) => {
        pub fn $name(isa: Isa) -> Option<super::TileFn<$w>> {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 | Isa::Avx2Vnni => Some(super::x86::$name),
                _ => None,
            }
        }
    };
    ($name:ident, $w:ty, legacy) => {
        pub fn $name(isa: Isa) -> Option<super::TileFn<$w>> {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => Some(super::x86::$name),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2Vnni => Some(super::x86::vnni::$name),
                #[cfg(target_arch = "aarch64")]
                Isa::Neon => Some(super::arm::$name),
                #[cfg(target_arch = "aarch64")]
                Isa::NeonDotprod | Isa::NeonI8mm => Some(super::arm::dotprod::$name),
                _ => None,
            }
        }
    };
}

pick_tile!(q4_0_x4, BlockQ4_0, legacy);
pick_tile!(q4_1_x4, BlockQ4_1, legacy);
pick_tile!(q5_0_x4, BlockQ5_0, legacy);
pick_tile!(q8_0_x4, BlockQ8_0, legacy);
pick_tile!(q4_k_x4, BlockQ4K);
pick_tile!(q6_k_x4, BlockQ6K);

macro_rules! pick_pair {
    ($name:ident, $w:ty) => {
        pub fn $name(isa: Isa) -> Option<super::PairFn<$w>> {
            match isa {
                #[cfg(target_arch = "aarch64")]
                Isa::NeonI8mm => Some(super::arm::i8mm::$name),
                _ => {
                    let _ = isa;
                    None
                }
            }
        }
    };
    ($name:ident, $w:ty, x86) => {
        pub fn $name(isa: Isa) -> Option<super::PairFn<$w>> {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => Some(super::x86::$name),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2Vnni => Some(super::x86::vnni::$name),
                #[cfg(target_arch = "aarch64")]
                Isa::NeonI8mm => Some(super::arm::i8mm::$name),
                _ => None,
            }
        }
    };
}

pick_pair!(q4_0_x2x4, BlockQ4_0, x86);
pick_pair!(q4_1_x2x4, BlockQ4_1);
pick_pair!(q5_0_x2x4, BlockQ5_0, x86);
pick_pair!(q8_0_x2x4, BlockQ8_0, x86);

macro_rules! pick_unpacked {
    ($name:ident, $w:ty, $kernels:ident) => {
        pub fn $name(isa: Isa) -> Option<super::Unpacked<$w>> {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => Some(super::x86::unpacked::$kernels(false)),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2Vnni => Some(super::x86::unpacked::$kernels(true)),
                _ => None,
            }
        }
    };
}

macro_rules! pick_outer {
    ($name:ident, $wide:ty) => {
        /// The outer-product prefill tile, on CPUs that have one.
        pub fn $name(isa: Isa) -> Option<super::outer::OuterFn<$wide>> {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2Vnni => Some(super::x86::outer::$name),
                _ => None,
            }
        }
    };
}

pick_outer!(q4_k_outer, super::outer::WideQ4K);
pick_outer!(q6_k_outer, super::outer::WideQ6K);

pick_unpacked!(q4_0_unpacked, BlockQ4_0, q4_0);
pick_unpacked!(q4_1_unpacked, BlockQ4_1, q4_1);
pick_unpacked!(q5_0_unpacked, BlockQ5_0, q5_0);
