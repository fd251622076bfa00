"""`gptoss run` (alias chat): scripted interactive sessions under a pseudo-terminal (pexpect), and
with piped stdin. Every prompt the session sends to the model is logged (--prompt-log) and checked
against openai-harmony's render of the conversation we expect at that point."""
import json
import os
import subprocess
import time

import pexpect
import pytest

from cli_util import (CALL_PREFIX, DATE, WEATHER_TOOLS, make_tiny_model,
                      render_for_completion, system_message, weather_developer_message)

START, ASSISTANT = 200006, 173781


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("run-model"))


def user(text):
    from openai_harmony import Message, Role
    return Message.from_role_and_content(Role.USER, text)


def spawn(gptoss_bin, model, log, *extra):
    p = pexpect.spawn(gptoss_bin, ["run", model, "--current-date", DATE, "--prompt-log", str(log), "--threads", "2",
                                   *map(str, extra)],
                      encoding="utf-8", timeout=60, dimensions=(40, 200),
                      env={**os.environ, "GPTOSS_HISTORY": str(log) + ".history"})
    p.expect_exact(">>> ")
    return p


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_interactive_session(gptoss_bin, model, enc, tmp_path):
    log = tmp_path / "prompts.jsonl"
    p = spawn(gptoss_bin, model, log, "-n", "4", "--seed", "5")
    p.sendline("Hello there")
    p.expect_exact("[max tokens reached]")
    p.expect_exact(">>> ")
    p.sendline("/reasoning high")
    p.expect_exact("Set reasoning effort to 'high'.")
    p.expect_exact(">>> ")
    # A long answer, stopped with Ctrl-C once it is streaming; the program keeps running.
    p.sendline("/set parameter num_predict -1")
    p.expect_exact(">>> ")
    p.sendline("tell me more")
    p.expect(r"\S")  # some output has arrived
    p.sendintr()
    p.expect_exact("[stopped]")
    p.expect_exact(">>> ")
    p.sendline("/set parameter num_predict 3")
    p.expect_exact(">>> ")
    p.sendline('"""line one')
    p.expect_exact("... ")
    p.sendline('line two"""')
    p.expect_exact("[max tokens reached]")
    p.expect_exact(">>> ")
    p.sendline("/stats")
    p.expect(r"eval count: +2 token\(s\)")
    p.expect_exact(">>> ")
    p.sendline("/clear")
    p.expect_exact("Cleared session context")
    p.expect_exact(">>> ")
    p.sendline("after clear")
    p.expect_exact("[max tokens reached]")
    p.expect_exact(">>> ")
    p.sendline("/nonsense")
    p.expect_exact("Unknown command '/nonsense'")
    p.expect_exact(">>> ")
    # Ctrl-C at the prompt once warns; twice exits.
    p.sendintr()
    p.expect_exact("Ctrl-C again")
    p.expect_exact(">>> ")
    p.sendintr()
    p.expect(pexpect.EOF)
    p.close()
    assert p.exitstatus == 0

    steps = read_log(log)
    assert [s["finish_reason"] for s in steps] == ["length", "cancelled", "length", "length"]
    assert steps[0]["prompt_ids"] == render_for_completion(enc, [system_message("medium"), user("Hello there")])
    # After /reasoning high: the new system message, the history, the new user message.
    sys_high = enc.render(system_message("high"))
    p1 = steps[1]["prompt_ids"]
    assert p1[:len(sys_high)] == sys_high
    assert p1[-len(enc.render(user("tell me more"))) - 2:] == enc.render(user("tell me more")) + [START, ASSISTANT]
    assert enc.render(user("Hello there")) == p1[len(sys_high):len(sys_high) + len(enc.render(user("Hello there")))]
    assert 0 < len(steps[1]["completion_ids"])
    # The multi-line message is one user message with its newline.
    ml = enc.render(user("line one\nline two")) + [START, ASSISTANT]
    assert steps[2]["prompt_ids"][-len(ml):] == ml
    # After /clear only the system message and the new question remain.
    assert steps[3]["prompt_ids"] == render_for_completion(enc, [system_message("high"), user("after clear")])


def test_history_is_saved_and_recalled(gptoss_bin, model, tmp_path):
    log = tmp_path / "h.jsonl"
    p = spawn(gptoss_bin, model, log)
    p.sendline("/reasoning low")
    p.expect_exact(">>> ")
    p.sendline("/bye")
    p.expect(pexpect.EOF)
    assert "/reasoning\\040low" in (tmp_path / "h.jsonl.history").read_text()  # libedit encodes spaces
    # A new session recalls it with the up arrow (libedit's history; /bye is the newest entry).
    p = spawn(gptoss_bin, model, log)
    p.send("\x1b[A")
    p.send("\x1b[A")
    p.send("\r")
    p.expect_exact("Set reasoning effort to 'low'.")
    p.expect_exact(">>> ")
    p.sendline("/bye")
    p.expect(pexpect.EOF)


def test_exit_with_ctrl_d_and_bye(gptoss_bin, model, tmp_path):
    p = spawn(gptoss_bin, model, tmp_path / "a.jsonl")
    time.sleep(0.2)  # let the line editor take the terminal (a ^D typed earlier meets the cooked tty)
    p.send("\x04")
    p.expect(pexpect.EOF)
    p.close()
    assert p.exitstatus == 0
    p = spawn(gptoss_bin, model, tmp_path / "b.jsonl")
    p.sendline("/help")
    p.expect_exact("/reasoning low|medium|high")
    p.expect_exact(">>> ")
    p.sendline("/bye")
    p.expect(pexpect.EOF)
    p.close()
    assert p.exitstatus == 0


def test_tool_call_user_types_result(gptoss_bin, model, enc, tmp_path):
    from openai_harmony import Author, Message, Role
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(WEATHER_TOOLS))
    log = tmp_path / "prompts.jsonl"
    p = spawn(gptoss_bin, model, log, "--tools", tools, "--force-prefix", CALL_PREFIX, "-n", "40", "--seed", "2")
    p.sendline("Weather in Paris?")
    p.expect_exact('→ functions.get_weather({"city":"Paris"})')
    p.expect_exact("result of functions.get_weather> ")
    p.sendline('{"temp": 21, "sky": "clear"}')
    p.expect_exact(">>> ")
    p.sendline("/bye")
    p.expect(pexpect.EOF)
    steps = read_log(log)
    assert len(steps) == 2
    call = (Message.from_role_and_content(Role.ASSISTANT, '{"city":"Paris"}').with_channel("commentary")
            .with_recipient("functions.get_weather").with_content_type("<|constrain|>json"))
    result = (Message.from_author_and_content(Author.new(Role.TOOL, "functions.get_weather"),
                                              '{"temp": 21, "sky": "clear"}')
              .with_recipient("assistant").with_channel("commentary"))
    base = [system_message(), weather_developer_message(), user("Weather in Paris?")]
    assert steps[0]["prompt_ids"] == render_for_completion(enc, base)
    assert steps[1]["prompt_ids"] == render_for_completion(enc, base + [call, result])


def test_tool_cmd_and_piped_stdin(gptoss_bin, model, enc, tmp_path):
    from openai_harmony import Author, Message, Role
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(WEATHER_TOOLS))
    log = tmp_path / "prompts.jsonl"
    # stdin is not a terminal: plain line reading, no libedit.
    r = subprocess.run([gptoss_bin, "run", model, "--current-date", DATE, "--prompt-log", str(log), "--tools",
                        str(tools), "--tool-cmd", "tr a-z A-Z", "--force-prefix", CALL_PREFIX, "-n", "40"],
                       input="Weather in Paris?\n", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert '← {"CITY":"PARIS"}' in r.stdout
    steps = read_log(log)
    call = (Message.from_role_and_content(Role.ASSISTANT, '{"city":"Paris"}').with_channel("commentary")
            .with_recipient("functions.get_weather").with_content_type("<|constrain|>json"))
    result = (Message.from_author_and_content(Author.new(Role.TOOL, "functions.get_weather"), '{"CITY":"PARIS"}')
              .with_recipient("assistant").with_channel("commentary"))
    assert steps[1]["prompt_ids"] == render_for_completion(
        enc, [system_message(), weather_developer_message(), user("Weather in Paris?"), call, result])


def test_history_drops_previous_analysis(gptoss_bin, model, enc, tmp_path):
    from openai_harmony import Message, Role
    prefix = ("<|channel|>analysis<|message|>They greet.<|end|><|start|>assistant<|channel|>final"
              "<|message|>Hello!<|return|>")
    log = tmp_path / "prompts.jsonl"
    r = subprocess.run([gptoss_bin, "run", model, "--current-date", DATE, "--prompt-log", str(log),
                        "--force-prefix", prefix, "-n", "30", "--hide-reasoning"],
                       input="hi\nand now?\n", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Hello!" in r.stdout and "They greet." not in r.stdout
    steps = read_log(log)
    final = Message.from_role_and_content(Role.ASSISTANT, "Hello!").with_channel("final")
    analysis = Message.from_role_and_content(Role.ASSISTANT, "They greet.").with_channel("analysis")
    expected = render_for_completion(enc, [system_message(), user("hi"), final, user("and now?")])
    assert steps[1]["prompt_ids"] == expected
    # openai-harmony drops the analysis itself when given the full history.
    assert render_for_completion(enc, [system_message(), user("hi"), analysis, final, user("and now?")]) == expected
    # Shown (dimmed, between Thinking... lines) without --hide-reasoning.
    r = subprocess.run([gptoss_bin, "run", model, "--force-prefix", prefix], input="hi\n", capture_output=True,
                       text=True, timeout=120)
    assert "Thinking...\nThey greet." in r.stdout and "Hello!" in r.stdout


def test_run_errors(gptoss_bin, model, tmp_path):
    r = subprocess.run([gptoss_bin, "run", str(tmp_path / "missing")], capture_output=True, text=True, input="")
    assert r.returncode == 1 and "missing" in r.stderr
    r = subprocess.run([gptoss_bin, "chat", model, "--top-k", "-3"], capture_output=True, text=True, input="")
    assert r.returncode == 2 and "--top-k" in r.stderr
    r = subprocess.run([gptoss_bin, "run", model, "--tools", str(tmp_path / "none.json")], capture_output=True,
                       text=True, input="")
    assert r.returncode == 2 and "none.json" in r.stderr
    # The chat flags are read as generate reads them (chat_options_from_args).
    for flags, needle in [(["-n", "0"], "-n must be a positive number"), (["--reasoning", "extreme"], "--reasoning"),
                          (["--temperature", "-1"], "--temperature")]:
        r = subprocess.run([gptoss_bin, "run", model, *flags], capture_output=True, text=True, input="")
        assert r.returncode == 2 and needle in r.stderr, (flags, r.stderr)


def test_question_that_does_not_fit_is_dropped(gptoss_bin, model, enc, tmp_path):
    log = tmp_path / "prompts.jsonl"
    long_q = "please tell me everything about " * 3
    # The context holds the system message and a short question, not the long one.
    r = subprocess.run([gptoss_bin, "run", model, "--current-date", DATE, "--prompt-log", str(log), "--ctx", "80",
                        "-n", "3"], input=long_q + "\nhi\n", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "fills the context of 80 tokens" in r.stdout
    steps = read_log(log)
    assert len(steps) == 1
    assert steps[0]["prompt_ids"] == render_for_completion(enc, [system_message(), user("hi")])
