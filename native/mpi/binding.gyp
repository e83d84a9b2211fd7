{
  "targets": [
    {
      "target_name": "selfsup_mpi",
      "sources": [ "mpi.cc" ],
      "include_dirs": [ "<!(node -p \"require('node-addon-api').include_dir\")" ],
      "defines": [ "OMPI_SKIP_MPICXX=1", "MPICH_SKIP_MPICXX=1", "NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS" ],
      "cflags!": [ "-fno-exceptions" ],
      "cflags_cc!": [ "-fno-exceptions", "-fno-rtti" ],
      "cflags_cc": [ "-std=c++17", "-O2", "<!@(mpicc --showme:compile)" ],
      "libraries": [ "<!@(mpicc --showme:link)", "-ldl" ]
    }
  ]
}
