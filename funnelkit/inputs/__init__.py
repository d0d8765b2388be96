"""Data in: reading files and CRM exports, presets, validation and the quarantine, the sample."""
