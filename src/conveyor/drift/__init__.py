"""Drift: a profile of the training data (recorded in the package at build time) and how far live data is from it.

`profile_frame` makes a `TrainingProfile`, which `TrainingProfile.write` stores as the package's profile.json and
`read_profile` reads back; a `DriftWindow` keeps the last values the model scored and reports PSI per feature and
the KS p-value per numeric feature (`DriftReport`). A package without a profile has no drift to report: its report
is `unavailable(reason)`.
"""

from conveyor.drift.profile import PROFILE_FILE, FeatureProfile, TrainingProfile, profile_frame, read_profile
from conveyor.drift.report import DriftReport, FeatureDrift, psi, unavailable
from conveyor.drift.window import DEFAULT_CAPACITY, DriftWindow

__all__ = [
    "DEFAULT_CAPACITY",
    "PROFILE_FILE",
    "DriftReport",
    "DriftWindow",
    "FeatureDrift",
    "FeatureProfile",
    "TrainingProfile",
    "profile_frame",
    "psi",
    "read_profile",
    "unavailable",
]
