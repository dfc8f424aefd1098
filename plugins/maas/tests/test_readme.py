"""The README's promises: the signing examples produce what the plugin checks, every setting is documented."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ogx_tenancy_maas import MaasSettings, sign

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
EXAMPLE_KEY = "0123456789abcdef0123456789abcdef"
EXAMPLE_HEADERS = {
    "X-MaaS-Username": "alice",
    "X-MaaS-Group": '["system:authenticated","team-a"]',
    "X-MaaS-Subscription": "gold",
}


def example(language: str) -> str:
    match = re.search(rf"<!-- signing-example:{language} -->\n```{language}\n(.*?)```\n<!-- end -->", README, re.S)
    assert match, f"README has no {language} signing example"
    return match.group(1)


def test_the_worked_example_is_what_sign_computes():
    signature = sign(EXAMPLE_HEADERS, EXAMPLE_KEY, timestamp=1767225600)["X-MaaS-Signature"]
    assert f"the signature is `{signature}`" in README
    canonical = "ogx-tenancy-maas-v1\n1767225600\n" + "".join(
        f"{name.lower()}:{EXAMPLE_HEADERS[name]}\n" for name in sorted(EXAMPLE_HEADERS, key=str.lower)
    )
    assert f"```\n{canonical}```" in README


def test_the_python_example_signs_like_the_plugin():
    namespace: dict = {}
    exec(example("python"), namespace)  # our own README
    for timestamp in (1767225600, 5):
        for headers in (EXAMPLE_HEADERS, {"x-maas-username": " bob "}):
            expected = sign(headers, EXAMPLE_KEY, timestamp=timestamp)
            assert namespace["sign_maas"](headers, EXAMPLE_KEY, timestamp) == expected


@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("bash") is None, reason="needs bash and openssl")
def test_the_shell_example_signs_like_the_plugin():
    script = example("sh").replace("TS=$(date +%s)", "TS=1767225600")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == sign(EXAMPLE_HEADERS, EXAMPLE_KEY, timestamp=1767225600)["X-MaaS-Signature"]


def test_every_setting_is_in_the_settings_table():
    table = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    assert documented == set(MaasSettings.model_fields)


def test_the_start_up_error_quoted_is_the_real_one():
    from ogx_tenancy.settings import ConfigError, validate_plugin_settings

    with pytest.raises(ConfigError) as caught:
        validate_plugin_settings("maas", MaasSettings, {})
    quoted = README.split("Start-up refuses a configuration", 1)[1].split("```\n", 2)[1]
    assert " ".join(quoted.split()) == "ogx-tenancy: configuration error: " + " ".join(str(caught.value).split())
