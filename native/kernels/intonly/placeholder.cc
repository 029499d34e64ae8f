int dplora_intonly_placeholder_(void) { return 0; }
