//! Prefill that may be abandoned (the planner's warm-up while the agent is
//! idle): stopped between pieces it keeps what it computed, and a later
//! prefill of the same tokens carries on from there instead of starting
//! over. On the real SmolLM2 file.

mod common;

use hearth::llm::Engine;

#[test]
fn a_stopped_prefill_keeps_its_pieces_and_resumes() {
    let file = "SmolLM2-135M-Instruct.Q4_1.gguf";
    common::require_model(file);
    let engine = Engine::load(&common::models_dir().join(file), 2048).unwrap();
    let text = "The plumber Kestrel Heating serviced the boiler on 3 March 2026. ".repeat(12);
    let tokens = engine.tokenize_raw(&text);
    assert!(tokens.len() > 130, "{} tokens", tokens.len());
    let mut conv = engine.new_conversation().unwrap();

    // Stop when asked the second time: one piece of 64 done.
    let mut asked = 0;
    let done = engine
        .prefill_until(&mut conv, &tokens, 64, &mut || {
            asked += 1;
            asked > 1
        })
        .unwrap();
    assert!(!done);
    assert_eq!(conv.tokens(), &tokens[..64]);
    assert_eq!(conv.cache().len(), 64);

    // Carried on: only the rest is computed, in pieces.
    let mut pieces = 0;
    let done = engine
        .prefill_until(&mut conv, &tokens, 64, &mut || {
            pieces += 1;
            false
        })
        .unwrap();
    assert!(done);
    assert_eq!(pieces, (tokens.len() - 64).div_ceil(64));
    assert_eq!(conv.tokens(), &tokens[..]);

    // Nothing left to do; a plain prefill reuses all but the last token.
    assert!(
        engine
            .prefill_until(&mut conv, &tokens, 64, &mut || panic!(
                "asked with nothing to do"
            ))
            .unwrap()
    );
    let (_, fresh) = engine.prefill(&mut conv, &tokens).unwrap();
    assert_eq!(fresh, 1);
}
