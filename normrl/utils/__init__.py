"""Small shared helpers (run directories, seeding)."""
