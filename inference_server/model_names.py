"""The names of the served models, as task specs, the engine and `/v1/info` spell them.

`edit` is the instruction-edit model's name (EDIT_MODEL_ID); that the edit task shares the word is
the registry's business, not this module's.
"""

BASE = "base"  # MODEL_ID: every task but instruction edit
EDIT = "edit"  # EDIT_MODEL_ID
SETTINGS = {BASE: "MODEL_ID", EDIT: "EDIT_MODEL_ID"}  # which setting serves which model
