"""Offline stand-in for @rules_proto//proto:defs.bzl: Bazel's native rules under the same names (../README.md)."""

def proto_library(**attrs):
    native.proto_library(**attrs)

def proto_lang_toolchain(**attrs):
    native.proto_lang_toolchain(**attrs)

# Bazel 4 has ProtoInfo as a builtin.
ProtoInfo = ProtoInfo
