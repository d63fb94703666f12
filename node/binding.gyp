# binding.gyp - the addon and the libpagekite core it embeds.
# The core is compiled from the libpagekite C sources into a static library
# linked into the addon: the core sources listed in spec/pagekite.json (the
# list CMake and setuptools build) plus plugins_none.c, taken from ../c in a
# checkout or from csrc/ in a tarball made by `npm pack` (see
# scripts/core-sources.js, which prints them, and scripts/vendor.js, which
# copies them into csrc/ when packing).  Headers come from --nodedir (see
# scripts/build.js): Node's own uv.h, OpenSSL and zlib headers match the
# libuv, OpenSSL and zlib the node binary provides at run time; -luv -lssl
# -lcrypto -lz cover a node linked against the system's shared libraries.
{
  "targets": [
    {
      "target_name": "pkcore",
      "type": "static_library",
      "sources": ["<!@(node scripts/core-sources.js)"],
      "include_dirs": ["<!@(node scripts/core-sources.js --include)",
                       "<!@(node scripts/core-sources.js --src)"],
      "defines": ["_GNU_SOURCE", "PK_BUILDING"],
      "cflags": ["-std=gnu11", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra",
                 "-Wno-unused-parameter", "-Wshadow", "-Wformat=2", "-Wno-format-truncation"]
    },
    {
      "target_name": "pagekite",
      "dependencies": ["pkcore"],
      "sources": ["src/addon.c", "src/glue_generated.c"],
      "include_dirs": ["<!@(node scripts/core-sources.js --include)"],
      "cflags": ["-std=gnu11", "-fvisibility=hidden", "-Wall", "-Wextra",
                 "-Wno-unused-parameter", "-Wshadow", "-Wformat=2", "-Werror"],
      "libraries": ["-luv", "-lssl", "-lcrypto", "-lz", "-lpthread"]
    }
  ]
}
