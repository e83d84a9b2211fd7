{
  "targets": [
    {
      "target_name": "selfsup_native",
      "sources": [ "<!@(node -p \"require('fs').readdirSync('native').filter(f => f.endsWith('.cc')).map(f => 'native/' + f).join(' ')\")" ],
      "include_dirs": [ "<!(node -p \"require('node-addon-api').include_dir\")" ],
      "defines": [ "NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS" ],
      "cflags!": [ "-fno-exceptions" ],
      "cflags_cc!": [ "-fno-exceptions", "-fno-rtti" ],
      "cflags_cc": [ "-std=c++17", "-O3", "-march=native", "-fopenmp" ],
      "libraries": [ "-ldnnl", "-fopenmp" ],
      "actions": [
        {
          "action_name": "check_onednn",
          "inputs": [],
          "outputs": [ "<(INTERMEDIATE_DIR)/onednn_ok" ],
          "action": [ "sh", "-c", "test -f /usr/include/oneapi/dnnl/dnnl.hpp || { echo 'selfsup: oneDNN headers not found: install the Debian package libdnnl-dev (apt-get install libdnnl-dev)' >&2; exit 1; }; touch <(INTERMEDIATE_DIR)/onednn_ok" ]
        }
      ]
    }
  ]
}
