# Sourced by the measurement scripts: the CPU size of one defense (conf/reproduce/size/cpu.yaml's
# `models`, the one place it is written), printed as overrides; empty for a defense at its config's.
cpu_size() {
  "${PY:-.venv/bin/python}" -c 'import sys
from src.runtime.yamlfiles import read_yaml
print(" ".join(read_yaml("conf/reproduce/size/cpu.yaml")["models"].get(sys.argv[1]) or []))' "$1"
}
