-- LuaRocks rockspec for the `pagekite` Lua 5.4 module (lua/README.md).
--
-- Build it in this directory (lua/) of a checkout:
--     cd lua && luarocks --lua-version 5.4 make                  -- the default tree
--     cd lua && luarocks --lua-version 5.4 make --tree=$HOME/pk  -- a tree of your own
-- Run it here, not from the repository root: LuaRocks' builtin backend
-- copies a `lua/` folder of the directory it builds in into the tree as Lua
-- modules, and this repository's lua/ holds C sources.
--
-- The rock is self-contained, like the Python wheel and the npm package: it
-- compiles the library's core (the sources of spec/pagekite.json, with the Lua
-- plugin host) into pagekite.so, so no installed libpagekite is needed, only
-- the development files of libuv, OpenSSL and zlib (Debian: libuv1-dev
-- libssl-dev zlib1g-dev; elsewhere point LIBUV_DIR=, OPENSSL_DIR=, ZLIB_DIR=
-- at them).  The default plugins (plugins/*.lua) are installed as
-- pagekite/plugins/*.lua beside the tree's Lua modules, where the plugin host
-- finds them relative to pagekite.so (../../../share/lua/5.4/pagekite/plugins
-- from lib/lua/5.4/); the `plugin_dir=` setting overrides that.
--
-- tests/lua/test_rockspec.py keeps the source list, the plugins and the
-- version in step with spec/pagekite.json, plugins/ and CMakeLists.txt;
-- tests/install/stage_lua.sh builds the rock into a fresh tree and flies a
-- kite with it.
rockspec_format = "3.0"
package = "pagekite"
version = "0.92.0-1"
source = {
   -- `luarocks make` builds the checkout it runs in and fetches nothing.
   url = "git+file://./",
}
description = {
   summary = "PageKite reverse tunnels from Lua: connector and relay (libpagekite)",
   detailed = [[
The libpagekite core (a C PageKite connector and relay on libuv and OpenSSL)
as a Lua 5.4 module: pagekite.connector{} flies kites to a relay,
pagekite.relay{} runs one; pagekite.raw has every C call one to one.  The
rock bundles the core and its Lua plugin host with the default plugins
(web_ui, access).]],
   homepage = "https://pagekite.net/",
   labels = { "network", "tunnel", "proxy" },
}
supported_platforms = { "linux" }
dependencies = {
   "lua >= 5.4, < 5.5",
}
external_dependencies = {
   LIBUV = { header = "uv.h", library = "uv" },
   OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
   ZLIB = { header = "zlib.h", library = "z" },
}
build = {
   type = "builtin",
   modules = {
      pagekite = {
         sources = {
            "pagekite.c",
            "pagekite_raw.c",
            -- spec/pagekite.json "sources": "core", then "plugins": "lua".
            "../c/src/acl.c",
            "../c/src/admin.c",
            "../c/src/admin_render.c",
            "../c/src/api.c",
            "../c/src/api_relay.c",
            "../c/src/authapp.c",
            "../c/src/authapp_proto.c",
            "../c/src/authdns.c",
            "../c/src/authq.c",
            "../c/src/buffers.c",
            "../c/src/conn.c",
            "../c/src/connector.c",
            "../c/src/domains.c",
            "../c/src/events.c",
            "../c/src/handshake.c",
            "../c/src/hooks.c",
            "../c/src/httpfwd.c",
            "../c/src/iplimit.c",
            "../c/src/kiteauth.c",
            "../c/src/log.c",
            "../c/src/manager.c",
            "../c/src/proxy.c",
            "../c/src/proxyproto.c",
            "../c/src/registry.c",
            "../c/src/relay.c",
            "../c/src/replay.c",
            "../c/src/session.c",
            "../c/src/sign.c",
            "../c/src/stream.c",
            "../c/src/tlsnames.c",
            "../c/src/tunnel.c",
            "../c/src/wire.c",
            "../c/src/wire_enc.c",
            "../c/src/plugins_lua.c",
         },
         defines = {
            "_GNU_SOURCE",
            "PK_BUILDING",
            "PK_WITH_LUA=1",
            -- The plugin host's default plugin_dir (c/src/plugins_lua.c:
            -- default_plugin_dir): relative to the directory of pagekite.so.
            -- A rock has no build tree to run from, so the build-tree case
            -- names a directory that does not exist.
            'PK_LUA_PLUGIN_DIR="/usr/local/share/lua/5.4/pagekite/plugins"',
            'PK_LUA_PLUGIN_RELDIR="../../../share/lua/5.4/pagekite/plugins"',
            'PK_LUA_BUILD_LIBDIR="/nonexistent/pagekite-rock-build"',
            'PK_LUA_SOURCE_PLUGIN_DIR="/nonexistent/pagekite-rock-build"',
         },
         incdirs = {
            "../c/include",
            "../c/src",
            ".",
            "$(LIBUV_INCDIR)",
            "$(OPENSSL_INCDIR)",
            "$(ZLIB_INCDIR)",
         },
         libdirs = {
            "$(LIBUV_LIBDIR)",
            "$(OPENSSL_LIBDIR)",
            "$(ZLIB_LIBDIR)",
         },
         libraries = { "uv", "ssl", "crypto", "z", "pthread", "dl" },
      },
   },
   install = {
      lua = {
         ["pagekite.plugins.web_ui"] = "plugins/web_ui.lua",
         ["pagekite.plugins.access"] = "plugins/access.lua",
      },
   },
}
