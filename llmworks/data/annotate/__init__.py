"""A local annotation page: edit SFT records, rank responses into preference data."""
