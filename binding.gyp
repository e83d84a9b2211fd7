{
  "targets": [
    {
      "target_name": "selfsup_native",
      "sources": [ "<!@(node -p \"require('fs').readdirSync('native').filter(f => f.endsWith('.cc')).map(f => 'native/' + f).join(' ')\")" ],
      "include_dirs": [ "<!(node -p \"require('node-addon-api').include_dir\")", "<!@(node scripts/onednn.cjs include)" ],
      "defines": [ "NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS" ],
      "cflags!": [ "-fno-exceptions" ],
      "cflags_cc!": [ "-fno-exceptions", "-fno-rtti" ],
      "cflags_cc": [ "-std=c++17", "-O3", "-fopenmp" ],
      "libraries": [ "<!@(node scripts/onednn.cjs lib)", "-ldnnl", "-fopenmp" ],
      "conditions": [
        # tune our own loops (batch norm, elementwise) for the CPU that builds the addon, or SELFSUP_MARCH
        # (scripts/march.cjs); oneDNN picks its ISA at run time
        [ "target_arch=='x64'", { "cflags_cc": [ "-march=<!(node scripts/march.cjs)" ] } ],
        [ "target_arch=='arm64' and OS=='linux'", { "cflags_cc": [ "-mcpu=<!(node scripts/march.cjs)" ] } ],
        # macOS (Homebrew onednn + libomp), not verified: Apple clang takes OpenMP through the preprocessor
        [ "OS=='mac'", {
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "MACOSX_DEPLOYMENT_TARGET": "11.0",
            "OTHER_CPLUSPLUSFLAGS": [ "-O3", "-Xpreprocessor", "-fopenmp", "-I<!(brew --prefix libomp 2>/dev/null || echo /opt/homebrew/opt/libomp)/include" ]
          },
          "libraries!": [ "-fopenmp" ],
          "libraries": [ "-L<!(brew --prefix libomp 2>/dev/null || echo /opt/homebrew/opt/libomp)/lib", "-lomp" ]
        } ]
      ]
    }
  ]
}
