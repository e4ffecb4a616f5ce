"""fanbpf.flags against the kernel's uapi header, so no value is a guess."""

import re
from pathlib import Path

import pytest

from fanbpf.flags import PERMISSION_EVENTS, EventMask, InfoType, InitFlag, MarkFlag, Response

HEADERS = [
    Path("/usr/include/linux/fanotify.h"),  # the distribution's (Linux 6.1 on bookworm)
    Path(__file__).resolve().parents[2] / "build/linux-tools/include/uapi/linux/fanotify.h",  # 6.12
]

# enum class -> the uapi prefix of its members
PREFIXES = {InitFlag: "FAN_", EventMask: "FAN_", MarkFlag: "FAN_MARK_", Response: "FAN_", InfoType: "FAN_EVENT_INFO_TYPE_"}


def header_values(path: Path) -> dict[str, int]:
    """Evaluate the header's numeric ``#define FAN_*`` macros."""
    text = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S).replace("\\\n", " ")
    values: dict[str, int] = {}
    for name, expr in re.findall(r"^#define\s+(FAN_\w+)\s+(.+)$", text, flags=re.M):
        expr = re.sub(r"\b(FAN_\w+)\b", lambda m: str(values.get(m.group(1), "None")), expr)
        if re.fullmatch(r"[\s0-9a-fA-Fx|()<>&+-]+", expr):
            values[name] = eval(expr)  # only digits and operators are left
    return values


@pytest.fixture(params=[h for h in HEADERS if h.exists()], ids=lambda p: str(p))
def uapi(request) -> dict[str, int]:
    return header_values(request.param)


@pytest.mark.parametrize("cls", list(PREFIXES))
def test_members_match_the_header(cls, uapi):
    checked = 0
    for name, member in cls.__members__.items():
        macro = PREFIXES[cls] + name
        if macro in uapi:
            assert member.value == uapi[macro], macro
            checked += 1
    assert checked >= 3  # the header really was read


def test_header_report_flags_and_info_types_are_all_known(uapi):
    for macro in uapi:
        if macro.startswith("FAN_REPORT_"):
            assert macro[4:] in InitFlag.__members__, macro
        if macro.startswith("FAN_EVENT_INFO_TYPE_"):
            assert macro[20:] in InfoType.__members__, macro


def test_composites():
    assert EventMask.CLOSE == EventMask.CLOSE_WRITE | EventMask.CLOSE_NOWRITE
    assert EventMask.MOVE == EventMask.MOVED_FROM | EventMask.MOVED_TO
    assert InitFlag.REPORT_DFID_NAME_TARGET & InitFlag.REPORT_FID
    assert MarkFlag.MNTNS == MarkFlag.MOUNT | MarkFlag.FILESYSTEM
    assert EventMask.OPEN_PERM in PERMISSION_EVENTS and EventMask.OPEN not in PERMISSION_EVENTS


def test_unknown_bits_survive():
    """A newer kernel's bits must not make EventMask() raise."""
    assert EventMask(0x80000000 | 1).value == 0x80000001
