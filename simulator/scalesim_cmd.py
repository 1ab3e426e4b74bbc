"""``tessera scalesim``: SCALE-Sim's own inputs, unchanged (being written)."""

from workloads.errors import ConfigError


def add_arguments(parser):
    parser.add_argument("-c", dest="config", required=True)
    parser.add_argument("-t", dest="topology", required=True)


def main(args):
    raise ConfigError("tessera scalesim is not available in this build yet")
