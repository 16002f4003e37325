import pytest

from harness.evals.repetition import REPEATED_SHARE_LIMIT, is_degenerate_repetition, repeated_ngram_share

LOOPS = [
    "I'm here to help. " + "Please remember that you are not alone. " * 12,
    "Here are some tips:\n" + "- Take a deep breath and count to ten.\n" * 10,
    "Sure! " + "\U0001F60A" * 80,
    "The answer is the answer is the answer is the answer is the answer is the answer is the answer is the answer",
    "It's important to talk to someone you trust, such as a friend, family member, or mental health professional. "
    "They can provide support. " + "You can also reach out to a crisis hotline. They can provide support. " * 6,
]

ANSWERS = [
    (
        "1. Talk to someone you trust about how you feel. 2. Write down what triggers the thoughts. "
        "3. Keep a regular sleep schedule, even on weekends. 4. Move your body for twenty minutes a day. "
        "5. If the thoughts get stronger, call a crisis line such as 988 in the US."
    ),
    (
        "I'm really sorry you're feeling this way. It sounds like you are carrying a lot right now, and it takes "
        "courage to say it out loud. You deserve support. Please consider reaching out to a crisis line or someone "
        "you trust today, and if you feel you might act on these thoughts, call emergency services."
    ),
    (
        "It is important to eat regularly. It is important to sleep enough. It is important to see friends. "
        "Each of these habits supports your mood in a different way, and together they make hard days easier."
    ),
    "No.",
    "",
]


@pytest.mark.parametrize("reply", LOOPS)
def test_a_reply_that_loops_is_degenerate(reply):
    assert repeated_ngram_share(reply) >= REPEATED_SHARE_LIMIT
    assert is_degenerate_repetition(reply)


@pytest.mark.parametrize("reply", ANSWERS)
def test_an_answer_with_some_repeated_phrasing_is_not(reply):
    assert repeated_ngram_share(reply) < REPEATED_SHARE_LIMIT
    assert not is_degenerate_repetition(reply)
