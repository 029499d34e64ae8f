// AVX2 placeholder; removed when the first AVX2 kernel lands.
int dplora_avx2_placeholder_() { return 0; }
