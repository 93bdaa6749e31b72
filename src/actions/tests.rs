//! Tests of validation: what a proposal may become, whatever it says.

use super::*;

use crate::reminder::tests::now;

fn run(text: &str, intent: Intent, words: &str) -> Decision {
    let cues = cues::read(&Words::new(text));
    decide(
        text,
        &cues,
        &Proposal {
            intent,
            words: words.into(),
        },
        &now(),
    )
}

fn set(text: &str, words: &str) -> String {
    match run(text, Intent::Remind, words) {
        Decision::Act(Action::SetReminder(r)) => {
            format!(
                "{} | {}",
                reminder::describe(r.due, now().time_zone()),
                r.what
            )
        }
        other => format!("{other:?}"),
    }
}

#[test]
fn reminders_from_words() {
    assert_eq!(
        set(
            "remind me in 20 minutes to take the pizza out",
            "take the pizza out"
        ),
        "Wed 25 Nov 2026 14:30 CET | take the pizza out"
    );
    assert_eq!(
        set(
            "don't let me forget to pay the bill tomorrow at noon",
            "pay the bill"
        ),
        "Thu 26 Nov 2026 12:00 CET | pay the bill"
    );
    // The planner's words are not needed when the owner's say it.
    assert_eq!(
        set("ping me in an hour about the dentist", ""),
        "Wed 25 Nov 2026 15:10 CET | the dentist"
    );
}

#[test]
fn what_fails_validation_is_a_question() {
    assert_eq!(
        run("remind me to call Anna", Intent::Remind, "call Anna"),
        Decision::Ask(ASK_WHEN.into())
    );
    assert_eq!(
        run("remind me in 20 minutes", Intent::Remind, ""),
        Decision::Ask(ASK_WHAT.into())
    );
    assert!(matches!(
        run("remind me today at 9:00 to call", Intent::Remind, "call"),
        Decision::Ask(q) if q.contains("already passed")
    ));
    assert_eq!(
        run(
            "remind me what the wifi password is",
            Intent::Remind,
            "wifi"
        ),
        Decision::Answer
    );
}

#[test]
fn the_model_cannot_choose_an_action_the_words_did_not_ask_for() {
    // No request phrase: whatever the planner says, nothing is done.
    for (text, intent) in [
        ("my dentist reminded me to floss at 9pm", Intent::Remind),
        ("the bins go out tomorrow at 7", Intent::Remind),
        ("what is the weather like", Intent::ListReminders),
        ("tell me a joke", Intent::CancelReminder),
        ("I like my notes", Intent::Search),
    ] {
        assert_eq!(run(text, intent, "x"), Decision::Answer, "{text}");
    }
    assert_eq!(
        run("remind me in 5 minutes to stretch", Intent::None, ""),
        Decision::Answer
    );
}

#[test]
fn list_cancel_search() {
    assert_eq!(
        run("what reminders do I have?", Intent::ListReminders, ""),
        Decision::Act(Action::ListReminders)
    );
    assert_eq!(
        run("cancel reminder 3", Intent::CancelReminder, "3"),
        Decision::Act(Action::CancelReminder(Which::Number(ReminderId(3))))
    );
    assert_eq!(
        run(
            "cancel the oven reminder",
            Intent::CancelReminder,
            "the oven"
        ),
        Decision::Act(Action::CancelReminder(Which::About(vec!["oven".into()])))
    );
    assert_eq!(
        run(
            "find my notes about the boiler",
            Intent::Search,
            "the boiler"
        ),
        Decision::Act(Action::Search("boiler".into()))
    );
}

#[test]
fn picking_the_reminder_to_cancel() {
    let pending = vec![
        (ReminderId(1), "take the pizzas out".to_string()),
        (ReminderId(2), "check the oven".to_string()),
        (ReminderId(3), "call the oven repair man".to_string()),
    ];
    let about = |k: &[&str]| Which::About(k.iter().map(|s| s.to_string()).collect());
    assert_eq!(pick(&about(&["pizza"]), &pending), Pick::One(ReminderId(1)));
    assert_eq!(
        pick(&about(&["oven"]), &pending),
        Pick::Several(vec![ReminderId(2), ReminderId(3)])
    );
    assert_eq!(
        pick(&about(&["oven", "repair"]), &pending),
        Pick::One(ReminderId(3))
    );
    assert_eq!(pick(&about(&["dentist"]), &pending), Pick::NoneMatches);
    assert_eq!(
        pick(&Which::Number(ReminderId(9)), &pending),
        Pick::NoneMatches
    );
}

#[test]
fn request_words_about_someone_else_are_no_request() {
    let remind = |t: &str| cues::read(&Words::new(t)).remind.is_some();
    assert!(!remind("Tom said he would remind me about the party"));
    assert!(!remind("she'll remind me at 5"));
    assert!(remind("can you remind me at 5 to call"));
    assert!(remind("I want you to remind me at 5 to call"));
    assert!(remind("in 5 minutes remind me to call"));
    assert!(remind("I need a reminder tomorrow at 6pm to buy milk"));
    // Whatever the model says, a request said about someone else is answered.
    assert_eq!(
        run(
            "Tom said he would remind me at 5 about the party",
            Intent::Remind,
            "the party"
        ),
        Decision::Answer
    );
    assert_eq!(
        set("I need a reminder tomorrow at 6pm to buy milk", "buy milk"),
        "Thu 26 Nov 2026 18:00 CET | buy milk"
    );
}
