"""A local repository whose Python toolchain is this checkout's .venv/bin/python.

Nothing is downloaded: the rule only writes a BUILD file naming the interpreter by its
absolute path, which differs per checkout and so cannot be written in the tree's BUILD.
tools/ensure_venv.sh makes the .venv (tools/bazel_test.sh sources it first).
"""

def _venv_python_impl(rctx):
    root = rctx.path(Label("//:WORKSPACE")).dirname
    python = rctx.os.environ.get("LMC_TF_PYTHON", "%s/.venv/bin/python" % root)
    rctx.file("BUILD", """\
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

py_runtime(
    name = "py3_runtime",
    interpreter_path = "{python}",
    python_version = "PY3",
    stub_shebang = "#!{python}",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""".format(python = python))

venv_python = repository_rule(
    implementation = _venv_python_impl,
    environ = ["LMC_TF_PYTHON"],
    local = True,
)
