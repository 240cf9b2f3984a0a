"""Members: joining, confirming, consent, their rights, and admins looking after them (J1, J2, J5, J6, C1-C3)."""
