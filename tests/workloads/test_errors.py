"""How a problem names where it came from: a file and line, a command-line flag, or Python."""

from workloads.errors import ConfigError, Problem


def test_file_problem_names_file_line_and_key():
    problem = Problem("exp.yaml", "mapper.dataflw", "unknown key 'dataflw'", line=9,
                      hint="did you mean 'dataflow'?")
    assert str(problem) == "exp.yaml:9: mapper.dataflw: unknown key 'dataflw' (did you mean 'dataflow'?)"


def test_flag_problem_names_the_command_not_python():
    error = ConfigError(Problem(None, "--gemm", "expected MxKxN; found '4x8'"))
    assert str(error) == "tessera: --gemm: expected MxKxN; found '4x8'"


def test_python_built_problem_says_so():
    assert str(Problem(None, "rows", "must be >= 1")) == "<python>: rows: must be >= 1"
