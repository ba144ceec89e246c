"""Issue 16, offline-9: key actors are chosen by a logistic regression fitted on the tune split.

It replaced a floor on a hand-weighted salience that dropped anyone named once, late in the story,
whatever they did there; the regression weighs that against their having a verb of their own.
Invented texts in the style of the tune split.
"""

from tests.helpers.offline import actors_of, needs_model

pytestmark = needs_model

COURT_REPORT = """
Emily Hart, 39, told the court on Monday that she had been attacked outside the club by two police officers.
The officers, Mark Dunn and Paul Reid, denied the charges. Emily Hart said the two officers had followed her
home. Mark Dunn said he had never met her. Paul Reid told the jury that he had been on duty elsewhere.
Emily Hart told reporters after the hearing that she felt relieved. Mark Dunn's lawyer said he would appeal.
Emily Hart had waived her right to anonymity. The jury deliberated for two days. Emily Hart said she would
speak to the press later. Paul Reid said he was disappointed. The verdict was read out on Friday afternoon.
Emily Hart wept in the dock. Emily Hart hugged her mother.
The trial had lasted three weeks. Emily Hart thanked her family for their support. Emily Hart left the court
with her lawyers. Mark Dunn declined to comment. The court will hear sentencing arguments in June.
Simon Rowe, a lecturer in law at the University of Kent, said the verdict would change how such cases are heard.
"""


def test_a_name_seen_once_late_in_the_story_is_kept_when_it_acts():
    assert actors_of(COURT_REPORT)["Simon Rowe"] == "said the verdict would change how such cases are heard"

