import subprocess


def test_unknown_command_is_a_usage_error(gptoss_bin):
    r = subprocess.run([gptoss_bin, "no-such-command"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "unknown command 'no-such-command'" in r.stderr


def test_version(gptoss_bin):
    r = subprocess.run([gptoss_bin, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("gptoss ")
