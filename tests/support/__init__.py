"""Test helpers shared by the test tiers (local servers, fixture writers)."""
