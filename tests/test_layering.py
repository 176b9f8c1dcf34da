"""bai_core is a plain library: importing all of it must not pull in Prefect (tasks/ and flows/ wrap it)."""

import subprocess
import sys


def test_bai_core_never_imports_prefect():
    code = (
        "import pkgutil, sys, bai_core\n"
        "for m in pkgutil.walk_packages(bai_core.__path__, 'bai_core.'):\n"
        "    __import__(m.name)\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'prefect'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]"
