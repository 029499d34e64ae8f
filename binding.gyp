{
  "variables": {
    "dplora_common_cflags": ["-O3", "-fno-math-errno", "-Wall", "-Wextra", "-fPIC"]
  },
  "target_defaults": {
    "include_dirs": ["native/include", "<!@(node scripts/sources.js includes)"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
    "cflags_cc": ["-std=c++17"],
    "cflags": ["<@(dplora_common_cflags)"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
      "OTHER_CFLAGS": ["<@(dplora_common_cflags)"]
    },
    "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1 } }
  },
  "targets": [
    {
      "target_name": "dplora_intonly",
      "type": "static_library",
      "sources": ["<!@(node scripts/sources.js intonly)"],
      "conditions": [
        ["OS!='win'", { "cflags": ["-mgeneral-regs-only"] }]
      ]
    },
    {
      "target_name": "dplora_avx2",
      "type": "static_library",
      "conditions": [
        ["target_arch=='x64'", {
          "sources": ["<!@(node scripts/sources.js avx2)"],
          "cflags": ["-mavx2", "-mfma"],
          "xcode_settings": { "OTHER_CFLAGS": ["-mavx2", "-mfma"] }
        }]
      ]
    },
    {
      "target_name": "dplora_avx512",
      "type": "static_library",
      "conditions": [
        ["target_arch=='x64'", {
          "sources": ["<!@(node scripts/sources.js avx512)"],
          "cflags": ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl"],
          "xcode_settings": { "OTHER_CFLAGS": ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl"] }
        }]
      ]
    },
    {
      "target_name": "dplora_avx512bf16",
      "type": "static_library",
      "conditions": [
        ["target_arch=='x64'", {
          "sources": ["<!@(node scripts/sources.js avx512bf16)"],
          "cflags": ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512bf16"],
          "xcode_settings": { "OTHER_CFLAGS": ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512bf16"] }
        }]
      ]
    },
    {
      "target_name": "dplora",
      "sources": [
        "<!@(node scripts/sources.js base)",
        "native/binding/addon.cc",
        "native/binding/core.cc",
        "native/binding/linalg.cc",
        "native/binding/rng.cc",
        "native/binding/fixed.cc",
        "native/binding/elementwise.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native/binding"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "dependencies": ["dplora_intonly", "dplora_avx2", "dplora_avx512", "dplora_avx512bf16"],
      "conditions": [
        ["target_arch=='arm64'", { "sources": ["<!@(node scripts/sources.js neon)"] }],
        ["OS=='linux'", { "libraries": ["-lpthread"] }]
      ]
    }
  ]
}
