//! Who Hearth listens to: the sender policy, decided in `serve` (the
//! trusted side; the bridge only maps transport events to frames). Deny by
//! default: the owner's numbers and senders the owner approved are
//! answered; an unknown sender is held and the owner asked once, with a
//! short code for `/approve` or `/deny`; groups are ignored unless
//! allow-listed, and then only messages that @mention Hearth count.
//!
//! WhatsApp names a person by phone number (`4915…@s.whatsapp.net`) or by
//! a LID (`1234…@lid`, a private id); [`Identity`] maps both to one
//! person before any decision, so a LID sender is judged by the number
//! behind it when that is known, and never mistaken for a number.
//!
//! Pure: no store, no clock; the caller supplies the facts.

/// A person as policy sees them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A phone number, digits only (`4915112345678`).
    Phone(String),
    /// A LID whose number is not known (digits of the LID).
    Lid(String),
}

impl Identity {
    /// The key approvals and denials are stored under.
    pub fn key(&self) -> String {
        match self {
            Identity::Phone(d) => format!("+{d}"),
            Identity::Lid(d) => format!("lid:{d}"),
        }
    }

    /// The JID a direct chat with this person has.
    pub fn chat_jid(&self) -> String {
        match self {
            Identity::Phone(d) => format!("{d}@s.whatsapp.net"),
            Identity::Lid(d) => format!("{d}@lid"),
        }
    }
}

/// A WhatsApp address split into its user and server, device suffix
/// (`:12`) and agent dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jid<'a> {
    pub user: &'a str,
    pub server: &'a str,
}

impl<'a> Jid<'a> {
    pub fn parse(s: &'a str) -> Option<Self> {
        let (user, server) = s.split_once('@')?;
        let user = user.split([':', '.']).next().unwrap_or("");
        if user.is_empty() || server.is_empty() {
            return None;
        }
        Some(Self { user, server })
    }

    pub fn is_phone(&self) -> bool {
        matches!(self.server, "s.whatsapp.net" | "c.us")
            && self.user.bytes().all(|b| b.is_ascii_digit())
    }

    pub fn is_lid(&self) -> bool {
        self.server == "lid" && self.user.bytes().all(|b| b.is_ascii_digit())
    }

    pub fn is_group(&self) -> bool {
        self.server == "g.us"
    }
}

/// The person behind `sender` (and `alt`, the other form the transport
/// gave for the same sender, if any); `lid_to_phone` looks up numbers
/// learned earlier. `None` for an address that is neither a number nor a
/// LID (it is then nobody policy can allow).
pub fn identity(
    sender: &str,
    alt: Option<&str>,
    lid_to_phone: impl Fn(&str) -> Option<String>,
) -> Option<Identity> {
    let jids: Vec<Jid<'_>> = std::iter::once(sender)
        .chain(alt)
        .filter_map(Jid::parse)
        .collect();
    if let Some(p) = jids.iter().find(|j| j.is_phone()) {
        return Some(Identity::Phone(p.user.to_string()));
    }
    let lid = jids.iter().find(|j| j.is_lid())?;
    Some(match lid_to_phone(lid.user) {
        Some(phone) => Identity::Phone(phone),
        None => Identity::Lid(lid.user.to_string()),
    })
}

/// The LID → number pair a message reveals (sender and alt in both forms).
pub fn learned_mapping(sender: &str, alt: Option<&str>) -> Option<(String, String)> {
    let a = Jid::parse(sender)?;
    let b = Jid::parse(alt?)?;
    match (a.is_lid(), b.is_phone(), a.is_phone(), b.is_lid()) {
        (true, true, _, _) => Some((a.user.to_string(), b.user.to_string())),
        (_, _, true, true) => Some((b.user.to_string(), a.user.to_string())),
        _ => None,
    }
}

/// How Hearth is linked to WhatsApp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Hearth has its own number; the owner messages it.
    #[default]
    Dedicated,
    /// Hearth is linked to the owner's own account and talks only in the
    /// owner's "message yourself" chat.
    Personal,
}

/// What is known about one inbound message.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub mode: Mode,
    pub chat: Jid<'a>,
    /// The sender, mapped; `None` when the address names nobody.
    pub sender: Option<&'a Identity>,
    pub is_group: bool,
    pub mentions_me: bool,
    /// Sent from the linked account itself.
    pub is_from_me: bool,
    /// The sender is one of the owner's numbers.
    pub owner: bool,
    /// The chat is a direct chat with one of the owner's numbers (in
    /// personal mode: the owner's "message yourself" chat).
    pub chat_is_owner: bool,
    /// What the owner decided about this sender before.
    pub decided: Option<Decision>,
    /// The group is allow-listed.
    pub group_allowed: bool,
    /// The owner opted this chat in to memory (kept, never answered).
    pub memory_chat: bool,
}

/// The owner's decision about a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approved,
    Denied,
}

/// What happens to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Store it and answer it.
    Answer,
    /// An unknown person: hold nothing, ask the owner (once) whether to
    /// approve them.
    AskOwner,
    /// Drop it unstored; only counted.
    Drop(DropReason),
    /// Keep it for search and questions (an opted-in chat), never answer.
    Remember,
}

/// Why a message was dropped (counted per reason; no content is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Denied,
    /// Unknown sender while the owner already has the most pending
    /// questions.
    TooManyPending,
    GroupNotAllowed,
    GroupWithoutMention,
    /// The linked account's own message outside the owner's self chat
    /// (personal mode) or at all (dedicated mode): never processed.
    FromMe,
    /// Personal mode: a chat other than the owner's self chat.
    NotSelfChat,
    /// An address policy cannot map to a person.
    Unidentified,
}

impl DropReason {
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Denied => "denied",
            DropReason::TooManyPending => "too_many_pending",
            DropReason::GroupNotAllowed => "group_not_allowed",
            DropReason::GroupWithoutMention => "group_without_mention",
            DropReason::FromMe => "from_me",
            DropReason::NotSelfChat => "not_self_chat",
            DropReason::Unidentified => "unidentified",
        }
    }
}

/// The decision for one message.
pub fn decide(f: &Facts<'_>) -> Verdict {
    match answerable(f) {
        // An opted-in chat keeps what would not be answered, without
        // asking the owner about its people; a denied sender stays out.
        Verdict::AskOwner if f.memory_chat => Verdict::Remember,
        Verdict::Drop(reason) if f.memory_chat && reason != DropReason::Denied => Verdict::Remember,
        v => v,
    }
}

/// The verdict without opt-in chat memory.
fn answerable(f: &Facts<'_>) -> Verdict {
    let is_group = f.is_group || f.chat.is_group();
    if f.mode == Mode::Personal {
        // Only the owner's "message yourself" chat, only the owner in it.
        let self_chat = !is_group && f.owner && f.is_from_me && f.chat_is_owner;
        return if self_chat {
            Verdict::Answer
        } else if f.is_from_me {
            Verdict::Drop(DropReason::FromMe)
        } else {
            Verdict::Drop(DropReason::NotSelfChat)
        };
    }
    if f.is_from_me {
        return Verdict::Drop(DropReason::FromMe);
    }
    if is_group {
        return if !f.group_allowed {
            Verdict::Drop(DropReason::GroupNotAllowed)
        } else if !f.mentions_me {
            Verdict::Drop(DropReason::GroupWithoutMention)
        } else if f.decided == Some(Decision::Denied) {
            Verdict::Drop(DropReason::Denied)
        } else {
            Verdict::Answer
        };
    }
    if f.sender.is_none() {
        return Verdict::Drop(DropReason::Unidentified);
    }
    match (f.owner, f.decided) {
        (true, _) => Verdict::Answer,
        (false, Some(Decision::Approved)) => Verdict::Answer,
        (false, Some(Decision::Denied)) => Verdict::Drop(DropReason::Denied),
        (false, None) => Verdict::AskOwner,
    }
}

/// Letters and digits that cannot be mistaken for each other.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A short approval code from random bytes (5 characters).
pub fn code(random: [u8; 5]) -> String {
    random
        .iter()
        .map(|b| CODE_ALPHABET[*b as usize % CODE_ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "4915112345678";

    fn facts<'a>(chat: &'a str, sender: Option<&'a Identity>) -> Facts<'a> {
        Facts {
            mode: Mode::Dedicated,
            chat: Jid::parse(chat).unwrap(),
            sender,
            is_group: false,
            mentions_me: false,
            is_from_me: false,
            owner: false,
            chat_is_owner: false,
            decided: None,
            group_allowed: false,
            memory_chat: false,
        }
    }

    #[test]
    fn opted_in_chats_are_remembered_not_answered_and_denied_people_stay_out() {
        let anna = Identity::Phone("447009001111".into());
        let chat = "447009001111@s.whatsapp.net";
        let mut f = facts(chat, Some(&anna));
        f.memory_chat = true;
        assert_eq!(decide(&f), Verdict::Remember, "no question about them");
        f.decided = Some(Decision::Denied);
        assert_eq!(decide(&f), Verdict::Drop(DropReason::Denied));
        f.decided = Some(Decision::Approved);
        assert_eq!(
            decide(&f),
            Verdict::Answer,
            "an approved person is answered"
        );
        // Personal mode: the owner's chat with Anna, both directions.
        let owner = Identity::Phone(OWNER.into());
        let mut p = facts(chat, Some(&owner));
        p.mode = Mode::Personal;
        p.owner = true;
        p.is_from_me = true;
        p.memory_chat = true;
        assert_eq!(decide(&p), Verdict::Remember);
        p.memory_chat = false;
        assert_eq!(decide(&p), Verdict::Drop(DropReason::FromMe));
        // A group that is not allow-listed, kept.
        let mut g = facts("120363000000000001@g.us", Some(&anna));
        g.memory_chat = true;
        assert_eq!(decide(&g), Verdict::Remember);
    }

    #[test]
    fn jids_and_identities() {
        let j = Jid::parse("4915112345678:12@s.whatsapp.net").unwrap();
        assert_eq!(j.user, OWNER);
        assert!(j.is_phone() && !j.is_lid());
        assert!(Jid::parse("1203630@g.us").unwrap().is_group());
        assert!(Jid::parse("nobody").is_none());
        let none = |_: &str| None;
        assert_eq!(
            identity("4915112345678@s.whatsapp.net", None, none),
            Some(Identity::Phone(OWNER.into()))
        );
        // A LID with its number alongside is the number.
        assert_eq!(
            identity(
                "99887766554433@lid",
                Some("4915112345678@s.whatsapp.net"),
                none
            ),
            Some(Identity::Phone(OWNER.into()))
        );
        // A LID alone stays a LID, even when its digits look like a number.
        assert_eq!(
            identity("4915112345678@lid", None, none),
            Some(Identity::Lid(OWNER.into()))
        );
        // ...unless the number behind it was learned.
        let known = |l: &str| (l == "99887766554433").then(|| OWNER.to_string());
        assert_eq!(
            identity("99887766554433@lid", None, known),
            Some(Identity::Phone(OWNER.into()))
        );
        assert_eq!(identity("x@broadcast", None, none), None);
        assert_eq!(
            learned_mapping("99887766554433@lid", Some("4915112345678@s.whatsapp.net")),
            Some(("99887766554433".into(), OWNER.into()))
        );
        assert_eq!(learned_mapping("1@lid", None), None);
    }

    #[test]
    fn dedicated_mode() {
        let me = Identity::Phone(OWNER.into());
        let chat = "4915112345678@s.whatsapp.net";
        let mut f = facts(chat, Some(&me));
        f.owner = true;
        assert_eq!(decide(&f), Verdict::Answer);
        // Hearth's own account writing (another device, an echo): never.
        f.is_from_me = true;
        assert_eq!(decide(&f), Verdict::Drop(DropReason::FromMe));

        let stranger = Identity::Phone("4411".into());
        let mut f = facts("4411@s.whatsapp.net", Some(&stranger));
        assert_eq!(decide(&f), Verdict::AskOwner);
        f.decided = Some(Decision::Approved);
        assert_eq!(decide(&f), Verdict::Answer);
        f.decided = Some(Decision::Denied);
        assert_eq!(decide(&f), Verdict::Drop(DropReason::Denied));

        let lid = Identity::Lid("555".into());
        assert_eq!(decide(&facts("555@lid", Some(&lid))), Verdict::AskOwner);
        assert_eq!(
            decide(&facts("x@broadcast", None)),
            Verdict::Drop(DropReason::Unidentified)
        );
    }

    #[test]
    fn groups_need_the_list_and_a_mention() {
        let anna = Identity::Phone("4411".into());
        let mut f = facts("1203630@g.us", Some(&anna));
        f.is_group = true;
        f.mentions_me = true;
        assert_eq!(decide(&f), Verdict::Drop(DropReason::GroupNotAllowed));
        f.group_allowed = true;
        assert_eq!(decide(&f), Verdict::Answer);
        f.mentions_me = false;
        assert_eq!(decide(&f), Verdict::Drop(DropReason::GroupWithoutMention));
        // Even the owner in a group: only with a mention.
        f.owner = true;
        assert_eq!(decide(&f), Verdict::Drop(DropReason::GroupWithoutMention));
    }

    #[test]
    fn personal_mode_is_the_self_chat_only() {
        let me = Identity::Phone(OWNER.into());
        let mut f = facts("4915112345678@s.whatsapp.net", Some(&me));
        f.mode = Mode::Personal;
        f.owner = true;
        f.is_from_me = true;
        f.chat_is_owner = true;
        assert_eq!(decide(&f), Verdict::Answer);
        // Someone else's message cannot sit in the self chat, but if a
        // mapping said so it would still not be the owner's.
        f.is_from_me = false;
        assert_eq!(decide(&f), Verdict::Drop(DropReason::NotSelfChat));
        // The owner writing to a friend: not Hearth's business.
        let mut g = facts("4411@s.whatsapp.net", Some(&me));
        g.mode = Mode::Personal;
        g.owner = true;
        g.is_from_me = true;
        assert_eq!(decide(&g), Verdict::Drop(DropReason::FromMe));
        // A friend writing to the owner: never answered by Hearth.
        let anna = Identity::Phone("4411".into());
        let mut h = facts("4411@s.whatsapp.net", Some(&anna));
        h.mode = Mode::Personal;
        h.decided = Some(Decision::Approved);
        assert_eq!(decide(&h), Verdict::Drop(DropReason::NotSelfChat));
    }

    #[test]
    fn codes_use_the_unambiguous_alphabet() {
        let c = code([0, 1, 31, 32, 255]);
        assert_eq!(c.len(), 5);
        assert!(!c.contains(['0', 'O', '1', 'I']));
    }
}
