"""Build harness/sample_data/mental_health_basics.pdf, the small domain document the demo config uses.

The text below is original psychoeducation prose written for this project. The PDF carries a running
header and page numbers, and soft hyphens (written `~` here) let fpdf2 split long words across lines,
so the corpus cleanup (header/footer removal, de-hyphenation, line joining) has real work to do.
The creation date is fixed, so re-running the script reproduces the same bytes.

    python scripts/build_sample_pdf.py [OUTPUT.pdf]
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from fpdf import FPDF

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "harness" / "sample_data" / "mental_health_basics.pdf"
RUNNING_HEADER = "Mental Health Basics: A Plain-Language Guide"
CREATION_DATE = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)

TITLE = "Mental Health Basics"
SECTIONS: list[tuple[str, list[str]]] = [
    (
        "About This Guide",
        [
            "This short guide describes some of the most common emotional diffi~cul~ties people meet in "
            "everyday life and offers practical ideas for looking after yourself and the people around you. "
            "It is written for general education. It cannot diagnose anything and it is not a substitute for "
            "talking with a qualified profes~sional who knows your situ~a~tion.",
            "Each part can be read on its own. If something here sounds very familiar, that is not a reason "
            "to worry; it is a reason to be curious and, where it helps, to reach out for support.",
        ],
    ),
    (
        "Understanding Stress",
        [
            "Stress is the body's way of getting ready for a challenge. When we face a deadline, an argument "
            "or a sudden change, the nervous system releases hormones that raise the heart rate, sharpen "
            "attention and send energy to the muscles. In short bursts this response is useful: it helps us "
            "study for an exam, react quickly on the road or rise to a difficult conversation.",
            "Problems begin when the alarm never switches off. Long periods of pressure, such as caring for a "
            "sick relative, money worries or an unsafe home, can keep the body in a state of constant "
            "readiness. People then notice tension headaches, a tight jaw, an upset stomach, irri~ta~bil~ity, "
            "forget~ful~ness and trouble switching off at night. Over months, unre~lent~ing stress can wear down "
            "the immune system and make low mood and anxiety more likely.",
            "A useful first step is to notice your own early signs. Some people clench their shoulders, some "
            "stop replying to messages, others reach for more caffeine or alcohol. Once you know your signals "
            "you can respond sooner. Small, regular habits help more than occasional grand gestures: a short "
            "walk in daylight, a few minutes of slow breathing with a longer out-breath, regular meals and a "
            "realistic to-do list that names only the next step for each task.",
            "It also helps to sort worries into what you can change and what you cannot. For the first group, "
            "break the problem into pieces and act on one piece today. For the second, practise letting the "
            "thought pass, talk it through with someone you trust, or set aside a fixed time later in the day "
            "for worrying so that it does not fill every hour.",
        ],
    ),
    (
        "Anxiety",
        [
            "Anxiety is a feeling of unease about something that might happen. Everyone feels anxious at "
            "times, and a little anxiety can keep us careful and prepared. It becomes a problem when the "
            "worry is out of proportion to the situ~a~tion, lasts for weeks, or starts to shape daily life, for "
            "example when someone avoids buses, parties or phone calls because of the dread they bring.",
            "Anxiety shows up in the body as well as the mind. A racing heart, shallow breathing, sweating, "
            "dizziness and a churning stomach are all common. During a panic attack these sensations can "
            "peak so sharply that people fear they are having a heart attack or losing control. Panic attacks "
            "are frightening but they pass, usually within ten minutes or so.",
            "Avoidance is the trap at the centre of most anxiety problems. Staying away from a feared "
            "situation brings instant relief, so the brain learns that the situ~a~tion must have been "
            "dangerous, and the fear grows. Gradual, planned exposure does the opposite: by approaching the "
            "situation in small steps and staying long enough for the anxiety to fall, people teach their "
            "nervous system that they can cope.",
            "Helpful every~day tools include slow breathing, grounding exercises such as naming five things "
            "you can see and four you can hear, regular exercise and cutting back on caffeine. Talking "
            "therapies, especially cognitive behavioural therapy, have strong evidence for anxiety, and some "
            "people also benefit from medi~ca~tion prescribed and reviewed by a doctor.",
        ],
    ),
    (
        "Low Mood and Depression",
        [
            "Feeling down after a loss, a disap~point~ment or a hard week is part of being human. Depression is "
            "different. It is a persistent low mood or loss of interest that lasts for at least two weeks "
            "and affects how a person thinks, feels and manages daily tasks. It is common, it is not a sign of "
            "weakness, and it is treatable.",
            "Signs of depression can include sadness or emptiness for most of the day, losing interest in "
            "things that used to bring pleasure, changes in sleep and appetite, low energy, difficulty "
            "concen~trat~ing, feelings of guilt or worth~less~ness, and moving or speaking more slowly than usual. "
            "Some people feel more irritable than sad. Thoughts that life is not worth living can also "
            "appear, and they should always be taken seriously.",
            "Depression tends to pull people away from the very things that would help them recover. "
            "Behavioural acti~va~tion is a simple, well-tested approach that works against this pull: you "
            "schedule small activities that give a sense of pleasure or achieve~ment, do them whether or not "
            "you feel like it, and notice how your mood responds. Staying connected with at least one person, "
            "even by a short message, matters as well.",
            "If low mood lasts, a doctor or counsellor can help you understand what is going on and discuss "
            "options such as talking therapy, medi~ca~tion or a combination of both. Recovery is often gradual, "
            "with good and bad days, and that uneven path is normal.",
        ],
    ),
    (
        "Sleep",
        [
            "Sleep and mental health are closely linked. A few bad nights make worries feel larger and "
            "patience shorter, while anxiety and low mood can in turn make it harder to fall or stay asleep. "
            "Improving sleep is therefore one of the most practical ways to support emotional wellbeing.",
            "The body clock likes regu~lar~ity. Getting up at roughly the same time every day, including "
            "weekends, anchors the rhythm more than any other habit. Morning daylight helps to set the clock, "
            "and dimming lights and screens in the last hour before bed allows the body to prepare for rest. "
            "Caffeine can stay active for many hours, so a mid-afternoon cut-off is sensible for most people.",
            "If you have been lying awake for what feels like a long time, it is usually better to get up, do "
            "something quiet in low light and return to bed when sleepy. This keeps the bed linked with "
            "sleep rather than with frus~tra~tion. Alcohol may make you drowsy at first but tends to break up "
            "sleep later in the night.",
            "Persistent insomnia is common and responds well to a structured programme called cognitive "
            "behavioural therapy for insomnia. If snoring, gasping at night or severe daytime sleepiness are "
            "part of the picture, it is worth seeing a doctor to rule out a medical sleep disorder.",
        ],
    ),
    (
        "Supporting a Friend",
        [
            "When someone you care about is struggling, you do not need special training to make a "
            "difference. Often the most helpful thing is to notice, ask and listen. A simple question such as "
            "'You seem quieter than usual lately, how are you doing?' shows that you have seen them and that "
            "you are willing to hear the answer.",
            "Listening well means giving your full attention, letting the person finish, and resisting the "
            "urge to fix everything at once. Reflecting back what you heard, for example 'It sounds like work "
            "has been crushing you', helps people feel under~stood. Avoid comparing their situ~a~tion with your "
            "own or telling them to cheer up; well-meant advice can feel dismissive.",
            "You can gently encour~age profes~sional help and offer practical support, like finding a phone "
            "number or keeping them company at a first appoint~ment. If they mention thoughts of suicide, ask "
            "about it directly and calmly. Asking does not put the idea in their head, and it can be a great "
            "relief to be able to say it out loud.",
            "Supporting someone else can be tiring, so look after yourself as well. You are not respon~si~ble "
            "for another person's recovery, and it is fine to share the load with other friends, family or "
            "services.",
        ],
    ),
    (
        "Grief and Loss",
        [
            "Grief is the natural response to losing someone or something that mattered, whether that is a "
            "person, a relationship, a job, good health or a hoped-for future. There is no correct way to "
            "grieve and no fixed timetable. Some people cry often, others feel numb, busy or even relieved, "
            "and many move back and forth between these states for a long time.",
            "People sometimes expect grief to fade in a straight line. In practice it often comes in waves, "
            "set off by anniversaries, songs, smells or ordinary moments such as reaching for the phone to "
            "share news. These waves tend to become less frequent and less over~whelm~ing, even though the "
            "loss itself is never forgotten.",
            "Looking after the basics, such as eating, sleeping and moving a little each day, helps the body "
            "carry the weight of grief. So does talking about the person or thing that was lost, in whatever "
            "way feels right, with friends, family, a faith community or a bereavement group. If grief stays "
            "as intense as in the first weeks for many months, or comes with thoughts of not wanting to live, "
            "a counsellor who special~is~es in bereavement can help.",
        ],
    ),
    (
        "Building Everyday Resilience",
        [
            "Resilience is not a fixed trait that some people have and others lack. It is a set of habits, "
            "relationships and skills that help us bend under pressure without breaking, and it can be "
            "strengthened at any age. Most of its building blocks are ordinary and unglamorous.",
            "Connection is the strongest of them. Regular contact with people who know and accept us, even in "
            "small doses, buffers the effects of stress. Physical activity is another: a brisk walk, a bike "
            "ride or a dance in the kitchen can lift mood and improve sleep. Having some structure to the "
            "day, with time for rest and for things that feel meaning~ful, provides a steady base when other "
            "parts of life are uncer~tain.",
            "The way we talk to ourselves matters as well. Many people speak to themselves far more harshly "
            "than they would ever speak to a friend. Noticing that inner critic and practising a kinder, "
            "more realistic voice is a skill that grows with repetition. Finally, resilience includes "
            "knowing when to ask for help. Leaning on others is not the opposite of coping; it is one of the "
            "most effective ways to cope.",
        ],
    ),
    (
        "When to Seek Help",
        [
            "It is a good idea to talk to a doctor or mental health profes~sional when difficult feelings last "
            "for more than a couple of weeks, keep coming back, or start to get in the way of work, study, "
            "relationships or looking after yourself. You do not have to wait until things are severe; "
            "getting support early often means recovery is quicker.",
            "Many people start with their family doctor, who can talk through what is happening, check for "
            "physical causes and explain local options. Counselling services at schools, universities and "
            "workplaces, as well as community organi~sa~tions and helplines, are other good starting points.",
            "Some situations need urgent help. If you or someone else is in immediate danger, has taken an "
            "overdose, or is thinking about ending their life and has a plan, contact your local emergency "
            "number or go to the nearest emergency depart~ment straight away. Crisis lines are also available "
            "in many countries at any hour, and speaking to someone can help you get through the next few "
            "minutes and hours.",
            "Reaching out is a sign of strength, not failure. Most people who seek help for their mental "
            "health find that things can get better, and every step towards support counts.",
        ],
    ),
]


class GuidePDF(FPDF):
    """Adds the running header on every page after the first and a page number at the foot of each page."""

    def header(self) -> None:
        if self.page_no() > 1:
            self.set_font("Helvetica", "I", 9)
            self.cell(0, 8, RUNNING_HEADER, align="C")
            self.ln(12)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", size=9)
        self.cell(0, 10, f"Page {self.page_no()}", align="C")


def _soft(text: str) -> str:
    return text.replace("~", "\u00ad")


def build_sample_pdf(output: Path) -> None:
    pdf = GuidePDF(format="A4")
    pdf.set_creation_date(CREATION_DATE)
    pdf.set_title(TITLE)
    pdf.set_author("harness project")
    pdf.set_margins(25, 20, 25)
    pdf.set_auto_page_break(auto=True, margin=22)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(0, 14, TITLE, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    for heading, paragraphs in SECTIONS:
        pdf.set_font("Helvetica", "B", 14)
        pdf.multi_cell(0, 9, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
        pdf.set_font("Helvetica", size=12)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6.5, _soft(paragraph), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
        pdf.ln(3)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(bytes(pdf.output()))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT
    build_sample_pdf(target)
    print(f"wrote {target}")
