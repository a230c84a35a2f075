"""HES codes used by the event contract (see shared DESIGN.md)."""

from __future__ import annotations

# Admission method (HES ADMIMETH)
EMERGENCY_ADMISSION_METHODS = frozenset({"21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"})
ELECTIVE_ADMISSION_METHODS = frozenset({"11", "12", "13"})
MATERNITY_ADMISSION_METHODS = frozenset({"31", "32"})
OTHER_NON_ELECTIVE_ADMISSION_METHODS = frozenset({"81", "82", "83"})
ADMISSION_METHODS = (
    EMERGENCY_ADMISSION_METHODS
    | ELECTIVE_ADMISSION_METHODS
    | MATERNITY_ADMISSION_METHODS
    | OTHER_NON_ELECTIVE_ADMISSION_METHODS
)

# Discharge destination (HES DISDEST, codes in use 2014-15)
DISCHARGE_DESTINATIONS = {
    "19": "usual place of residence",
    "29": "temporary place of residence",
    "51": "NHS hospital: general ward",
    "52": "NHS hospital: maternity",
    "53": "NHS hospital: mental health",
    "54": "NHS run care home",
    "65": "local authority care home",
    "79": "died",
    "85": "independent care home",
    "88": "hospice",
    "98": "not applicable",
    "99": "not known",
}
CARE_HOME_DESTINATIONS = frozenset({"54", "65", "85"})

# Discharge method (HES DISMETH)
DISCHARGE_METHODS = {
    "1": "clinical advice",
    "2": "self discharge",
    "3": "court",
    "4": "died",
    "5": "stillbirth",
    "8": "not applicable",
    "9": "not known",
}

DELAY_ATTRIBUTIONS = ("nhs", "social_care", "both")
CARE_HOME_SETTINGS = ("residential", "nursing")


def admission_group(method: str) -> str:
    """The BCF group of an admission method: emergency, elective, maternity or other."""
    if method in EMERGENCY_ADMISSION_METHODS:
        return "emergency"
    if method in ELECTIVE_ADMISSION_METHODS:
        return "elective"
    if method in MATERNITY_ADMISSION_METHODS:
        return "maternity"
    return "other"
