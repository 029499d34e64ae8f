// AVX-512 placeholder; removed when the first AVX-512 kernel lands.
int dplora_avx512_placeholder_() { return 0; }
