"""Harmony rendering against the openai-harmony package (the reference renderer).

Every conversation here is rendered by `gptoss harmony render --jsonl` and by openai_harmony;
the token ids must be identical. Cases: openai/harmony's own golden files (tests/data/harmony),
hand-written conversations for each feature, and a few hundred random conversations (fixed seed)
with random system/developer content and random JSON-Schema tools.
"""

import json
import random
import subprocess

from cli_util import ROOT, run_jsonl  # sets TIKTOKEN_ENCODINGS_BASE for openai_harmony

from openai_harmony import (
    Author,
    ChannelConfig,
    Conversation,
    DeveloperContent,
    HarmonyError,
    Message,
    ReasoningEffort,
    RenderConversationConfig,
    RenderOptions,
    Role,
    SystemContent,
    ToolDescription,
    ToolNamespaceConfig,
)

GOLDEN = ROOT / "tests" / "data" / "harmony"
N_RANDOM = 400


def run_render(gptoss_bin, requests):
    """Renders many requests in one process; returns one dict per request."""
    return run_jsonl(gptoss_bin, ["harmony", "render", "--jsonl"], requests)


def reference(enc, req):
    """What openai-harmony renders for a request (ids), or the string 'error'.

    The Python objects travel with the request (key "_obj"): a JSON round trip through
    openai_harmony's from_dict would fill pydantic defaults back into fields set to None."""
    config = RenderConversationConfig(auto_drop_analysis=req.get("drop_analysis", "reference") == "reference")
    mode = req.get("mode", "completion" if "conversation" in req else "message")
    obj = req["_obj"]
    try:
        if mode == "message":
            return enc.render(obj, RenderOptions(conversation_has_function_tools=req.get("has_function_tools", False)))
        if mode == "completion":
            return enc.render_conversation_for_completion(obj, Role(req.get("next_role", "assistant")), config)
        if mode == "conversation":
            return enc.render_conversation(obj, config)
        return enc.render_conversation_for_training(obj, config)
    except (HarmonyError, ValueError, RuntimeError):
        return "error"


def request(conv, **kw):
    return {"conversation": json.loads(conv.to_json()), "_obj": conv, **kw}


def message_request(msg, **kw):
    return {"message": json.loads(msg.to_json()), "_obj": msg, **kw}


def compare(enc, gptoss_bin, requests):
    got = run_render(gptoss_bin, [{k: v for k, v in r.items() if k != "_obj"} for r in requests])
    failures = []
    for i, (req, out) in enumerate(zip(requests, got)):
        want = reference(enc, req)
        if want == "error":
            if "error" not in out:
                failures.append(f"request {i}: harmony fails, we rendered {out.get('text')!r}")
            continue
        if "error" in out:
            failures.append(f"request {i}: {out['error']}")
        elif out["ids"] != want:
            failures.append(f"request {i}:\n want {enc.decode(want)!r}\n got  {out['text']!r}")
    assert not failures, f"{len(failures)} of {len(requests)} differ:\n" + "\n".join(failures[:5])
    return len(requests)


# ---------------------------------------------------------------- golden files

def golden_text(name):
    return (GOLDEN / name).read_text(encoding="utf-8").rstrip()


def weather_dev():
    return DeveloperContent.new().with_instructions("Always respond in riddles").with_function_tools([
        ToolDescription.new("get_location", "Gets the location of the user."),
        ToolDescription.new(
            "get_current_weather", "Gets the current weather in the provided location.",
            parameters={"type": "object", "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}},
                "required": ["location"]}),
        ToolDescription.new(
            "get_multiple_weathers", "Gets the current weather in the provided list of locations.",
            parameters={"type": "object", "properties": {
                "locations": {"type": "array", "items": {"type": "string"},
                              "description": 'List of city and state, e.g. ["San Francisco, CA", "New York, NY"]'},
                "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}},
                "required": ["locations"]}),
        ToolDescription.new("kitchensink", "A function with various complex schemas.", parameters={
            "description": "params object", "type": "object", "properties": {
                "string": {"type": "string", "title": "STRING", "description": "A string", "examples": ["hello", "world"]},
                "string_nullable": {"type": "string", "nullable": True, "description": "A nullable string",
                                    "default": "the default"},
                "string_enum": {"type": "string", "enum": ["a", "b", "c"]},
                "oneof_string_or_number": {"oneOf": [{"type": "string", "default": "default_string_in_oneof"},
                                                     {"type": "number", "description": "numbers can happen too"}],
                                           "description": "a oneof", "default": 20}}}),
    ])


def golden_cases():
    sys_default = SystemContent.new()
    user = lambda t: Message.from_role_and_content(Role.USER, t)  # noqa: E731
    asst = lambda t, ch: Message.from_role_and_content(Role.ASSISTANT, t).with_channel(ch)  # noqa: E731
    robot = DeveloperContent.new().with_instructions("Answer the user's questions like a robot.")
    q = "What is the capital of the largest country in the world?"
    cases = [
        ("test_simple_convo.txt", [Message.from_role_and_content(Role.SYSTEM, sys_default), user("What is 2 + 2?")], {}),
        ("test_no_tools.txt", [Message.from_role_and_content(
            Role.SYSTEM, SystemContent.new().with_conversation_start_date("2025-06-28"))], {}),
        ("test_reasoning_system_message.txt", [Message.from_role_and_content(
            Role.SYSTEM, SystemContent.new().with_required_channels(["analysis", "final"])), user("What is 2 + 2?")], {}),
        ("test_reasoning_system_message_no_instruction.txt", [Message.from_role_and_content(
            Role.SYSTEM, SystemContent.new().with_reasoning_effort(ReasoningEffort.HIGH)
            .with_required_channels(["analysis", "final"])),
            user("What is the best place to eat candy in the world?")], {}),
        ("test_reasoning_system_message_with_dates.txt", [Message.from_role_and_content(
            Role.SYSTEM, SystemContent.new().with_conversation_start_date("2021-01-01").with_knowledge_cutoff("2021-01")
            .with_required_channels(["analysis", "final"])), user("What is 42 * pi?")], {}),
        ("test_browser_tool_only.txt", [Message.from_role_and_content(
            Role.SYSTEM, SystemContent.new().with_conversation_start_date("2025-06-28").with_browser_tool())], {}),
        ("test_browser_and_python_tool.txt", [Message.from_role_and_content(
            Role.SYSTEM, SystemContent.new().with_conversation_start_date("2025-06-28").with_browser_tool()
            .with_python_tool())], {}),
        ("test_browser_and_function_tool.txt", [
            Message.from_role_and_content(Role.SYSTEM, SystemContent.new().with_conversation_start_date("2025-06-28")
                                          .with_browser_tool()),
            Message.from_role_and_content(Role.DEVELOPER, DeveloperContent.new().with_function_tools([
                ToolDescription.new(
                    "lookup_weather",
                    "Use this tool to lookup the weather in a given location. Call it with the parameter 'location', "
                    "can be any textual description of a location.",
                    parameters={"type": "object", "properties": {"location": {"type": "string"}},
                                "required": ["location"]})]))], {}),
        ("test_render_functions_with_parameters.txt", [
            Message.from_role_and_content(Role.SYSTEM, SystemContent.new().with_reasoning_effort(ReasoningEffort.HIGH)
                                          .with_conversation_start_date("2025-06-28")),
            Message.from_role_and_content(Role.DEVELOPER, weather_dev()),
            user("What is the weather like in SF?")], {}),
        ("test_dropping_cot_by_default.txt", [
            user("What is 2 + 2?"),
            asst("User asks: \u201cWhat is 2 + 2?\u201d Simple arithmetic. Provide answer.", "analysis"),
            asst("2 + 2 equals 4.", "final"), user("What about 9 / 2?")], {}),
        ("test_preserve_cot.txt", [
            user("What is 2 + 2?"),
            asst('User asks a simple question: "What is 2 + 2?" The answer: 4.', "analysis"),
            asst("2 + 2 equals 4.", "final"), user("What about 9 / 2?")], {"drop_analysis": "none"}),
        ("test_does_not_drop_if_ongoing_analysis.txt", [
            user("What is the weather in SF?"),
            asst("User asks: \u201cWhat is the weather in SF?\u201d We need to use lookup_weather tool.", "analysis"),
            asst('{"location": "San Francisco"}', "commentary").with_recipient("functions.lookup_weather")
            .with_content_type("<|constrain|>json"),
            Message.from_author_and_content(Author.new(Role.TOOL, "functions.lookup_weather"),
                                            '{"temperature": 20, "description": "sunny"}')], {}),
        ("test_keep_analysis_between_finals.txt", [
            user("What is 2 + 2?"), asst("thinking 2+2", "analysis"), asst("4", "final"),
            user("What is 3 + 5?"), asst("thinking 3+5", "analysis"), asst("8", "final")], {"mode": "conversation"}),
    ]
    for effort in ("low", "medium", "high"):
        sys_e = SystemContent.new().with_reasoning_effort(ReasoningEffort(effort.capitalize()))
        cases.append((f"test_simple_convo_{effort}_effort.txt", [
            Message.from_role_and_content(Role.SYSTEM, sys_e), Message.from_role_and_content(Role.DEVELOPER, robot),
            user(q)], {}))
        cases.append((f"test_simple_convo_{effort}_effort_no_instruction.txt", [
            Message.from_role_and_content(Role.SYSTEM, sys_e), user(q)], {}))
    return cases


def test_golden_files(enc, gptoss_bin):
    cases = golden_cases()
    reqs = [request(Conversation.from_messages(msgs), **kw) for _, msgs, kw in cases]
    got = run_render(gptoss_bin, [{k: v for k, v in r.items() if k != "_obj"} for r in reqs])
    for (name, _, _), out in zip(cases, got):
        want = golden_text(name)
        assert out.get("text") == want, name
        # the token-level check harmony's own tests make
        assert out["ids"] == enc.encode(want, allowed_special="all"), name
    compare(enc, gptoss_bin, reqs)


def test_tool_response_golden(enc, gptoss_bin):
    msg = Message.from_author_and_content(Author.new(Role.TOOL, "browser.search"), '{"result": "https://openai.com/"}') \
        .with_recipient("assistant").with_channel("commentary")
    [out] = run_render(gptoss_bin, [{"message": json.loads(msg.to_json())}])
    compare(enc, gptoss_bin, [message_request(msg)])
    assert out["text"].removesuffix("<|end|>") == golden_text("test_tool_response_parsing.txt")
    assert out["ids"] == enc.render(msg)


# ---------------------------------------------------------------- hand-written features

def test_features(enc, gptoss_bin):
    sysc = SystemContent.new().with_conversation_start_date("2025-08-05").with_reasoning_effort(ReasoningEffort.LOW)
    fn_dev = DeveloperContent.new().with_instructions("Be brief.\nUse tools.").with_function_tools([
        ToolDescription.new("get_weather", "Weather.\nSecond line.", parameters={
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        ToolDescription.new("ping", "No-arg tool with empty object schema", parameters={"type": "object", "properties": {}}),
        ToolDescription.new("raw", "Top-level string schema", parameters={"type": "string"}),
        ToolDescription.new("create_event", "Create a calendar event.\nReturns the event id.", parameters={
            "type": "object", "required": ["title", "when"], "properties": {
                "title": {"type": "string", "description": "Event title"},
                "attendees": {"type": "array", "items": {"type": "object", "required": ["email"], "properties": {
                    "email": {"type": "string"}, "optional": {"type": "boolean", "default": False}}}},
                "when": {"type": "object", "description": "Start/end", "required": ["start"], "properties": {
                    "start": {"type": "string", "description": "ISO time"},
                    "minutes": {"type": "integer", "default": 30}}},
                "priority": {"type": ["integer", "null"]},
                "tags": {"type": "array"},
                "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                "note": {"type": "string", "default": "none"},
                "ratio": {"type": "number", "nullable": True},
                "any_field": {},
                "mixed": {"anyOf": [{"type": "string"}], "allOf": [], "$ref": "#/x", "const": 1, "format": "date"},
            }}),
    ])
    user = Message.from_role_and_content(Role.USER, "Weather in Paris? <|start|> is text here")
    call = Message.from_role_and_content(Role.ASSISTANT, '{"city":"Paris"}').with_channel("commentary") \
        .with_recipient("functions.get_weather").with_content_type("<|constrain|>json")
    result = Message.from_author_and_content(Author.new(Role.TOOL, "functions.get_weather"), '{"temp": 21}') \
        .with_recipient("assistant").with_channel("commentary")
    convs = [
        [Message.from_role_and_content(Role.SYSTEM, sysc), Message.from_role_and_content(Role.DEVELOPER, fn_dev), user],
        [Message.from_role_and_content(Role.SYSTEM, sysc), Message.from_role_and_content(Role.DEVELOPER, fn_dev), user,
         Message.from_role_and_content(Role.ASSISTANT, "Need weather.").with_channel("analysis"),
         Message.from_role_and_content(Role.ASSISTANT, "Checking.").with_channel("commentary"), call, result,
         Message.from_role_and_content(Role.ASSISTANT, "21C.").with_channel("final")],
        # named authors, recipient "all" (not written), plain `json` content type, python tool result
        [Message.from_role_and_content(Role.USER, "hi").with_recipient("all"),
         Message.from_author_and_content(Author.new(Role.USER, "alice"), "hello"),
         Message.from_role_and_content(Role.ASSISTANT, "print(1)").with_channel("analysis").with_recipient("python")
         .with_content_type("code"),
         Message.from_author_and_content(Author.new(Role.TOOL, "python"), "1").with_recipient("assistant")
         .with_channel("analysis"),
         Message.from_role_and_content(Role.ASSISTANT, "{}").with_channel("commentary").with_recipient("functions.f")
         .with_content_type("json")],
        # no system content fields at all, channels not required, multi-part content
        [Message.from_role_and_content(Role.SYSTEM, SystemContent(model_identity=None, reasoning_effort=None,
                                                                  knowledge_cutoff=None, channel_config=None)),
         Message.from_role_and_content(Role.SYSTEM, SystemContent.new().with_channel_config(
             ChannelConfig(valid_channels=["final"], channel_required=False))),
         Message.from_role_and_contents(Role.USER, []).adding_content("a").adding_content("b"),
         Message.from_role_and_content(Role.DEVELOPER, DeveloperContent.new())],
        # errors: a tool message without a name, system content in a user message
        [Message.from_role_and_content(Role.TOOL, "x")],
        [Message.from_role_and_content(Role.USER, SystemContent.new())],
    ]
    reqs = []
    for msgs in convs:
        conv = Conversation.from_messages(msgs)
        for mode in ("completion", "conversation", "training"):
            for drop in ("reference", "none"):
                reqs.append(request(conv, mode=mode, drop_analysis=drop))
        reqs.append(request(conv, next_role="user"))
    reqs.append(message_request(call))
    reqs.append(message_request(Message.from_role_and_content(Role.SYSTEM, sysc), has_function_tools=True))
    compare(enc, gptoss_bin, reqs)


def test_drop_analysis_last_final_rule(gptoss_bin):
    """vLLM's rule (harmony-and-apis.md §4.3): every analysis before the last final goes."""
    msgs = [{"role": "user", "content": "q1"},
            {"role": "assistant", "channel": "analysis", "content": "think1"},
            {"role": "assistant", "channel": "final", "content": "a1"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "channel": "analysis", "content": "think2"},
            {"role": "assistant", "channel": "final", "content": "a2"},
            {"role": "user", "content": "q3"},
            {"role": "assistant", "channel": "analysis", "content": "think3"},
            {"role": "assistant", "channel": "commentary", "recipient": "functions.f", "content": "{}"}]
    [ref, last] = run_render(gptoss_bin, [{"conversation": {"messages": msgs}},
                                          {"conversation": {"messages": msgs}, "drop_analysis": "last-final"}])
    assert "think1" in ref["text"] and "think2" in ref["text"]  # harmony keeps all: the turn is open
    assert "think1" not in last["text"] and "think2" not in last["text"] and "think3" in last["text"]


def test_response_formats(enc, gptoss_bin):
    """openai-harmony has no response-format field; docs/format.md appends the section to the
    developer message. Our render must equal harmony's render of that text as instructions."""
    schema = {"properties": {"items": {"type": "array", "description": "entries \u00e9", "items": {"type": "string"}}},
              "type": "object"}
    dev = {"type": "developer_content", "instructions": "You are a helpful shopping assistant",
           "response_formats": [{"name": "shopping_list", "description": "A list", "schema": schema},
                                {"name": "other", "schema": {"type": "string"}}]}
    conv = {"messages": [{"role": "developer", "content": [dev]}, {"role": "user", "content": "eggs"}]}
    text = ("You are a helpful shopping assistant\n\n# Response Formats\n\n## shopping_list\n\n// A list\n" +
            json.dumps(schema, separators=(",", ":"), ensure_ascii=False) + '\n\n## other\n\n{"type":"string"}')
    same = Conversation.from_messages([
        Message.from_role_and_content(Role.DEVELOPER, DeveloperContent.new().with_instructions(text)),
        Message.from_role_and_content(Role.USER, "eggs")])
    [out] = run_render(gptoss_bin, [{"conversation": conv}])
    assert out["ids"] == enc.render_conversation_for_completion(same, Role.ASSISTANT)


def test_bad_json_is_reported_with_its_field(gptoss_bin):
    reqs = [{"conversation": {"messages": [{"role": "robot", "content": "x"}]}},
            {"conversation": {"messages": [{"role": "user"}]}},
            {"conversation": {"messages": [{"role": "system", "content": [
                {"type": "system_content", "reasoning_effort": "Extreme"}]}]}}]
    out = run_render(gptoss_bin, reqs)
    assert "messages[0].role" in out[0]["error"]
    assert "content" in out[1]["error"]
    assert "reasoning_effort" in out[2]["error"]
    r = subprocess.run([gptoss_bin, "harmony", "render", "--file", "/nonexistent.json"], capture_output=True, text=True)
    assert r.returncode != 0 and "nonexistent" in r.stderr


def test_cli_text_and_ids(enc, gptoss_bin, tmp_path):
    conv = Conversation.from_messages([Message.from_role_and_content(Role.USER, "What is 2 + 2?")])
    f = tmp_path / "conv.json"
    f.write_text(conv.to_json())
    text = subprocess.run([gptoss_bin, "harmony", "render", "--file", str(f)], capture_output=True, text=True, check=True)
    assert text.stdout == "<|start|>user<|message|>What is 2 + 2?<|end|><|start|>assistant\n"
    ids = subprocess.run([gptoss_bin, "harmony", "render", "--file", str(f), "--ids", "--no-completion"],
                         capture_output=True, text=True, check=True)
    assert json.loads(ids.stdout) == enc.render_conversation(conv)
    conv = Conversation.from_messages([
        Message.from_role_and_content(Role.USER, "q"),
        Message.from_role_and_content(Role.ASSISTANT, "think").with_channel("analysis"),
        Message.from_role_and_content(Role.ASSISTANT, "a").with_channel("final")])
    f.write_text(conv.to_json())
    for flags, want in ((["--training"], enc.render_conversation_for_training(conv)),
                        (["--next-role", "user", "--drop-analysis", "none"],
                         enc.render_conversation_for_completion(conv, Role.USER,
                                                                RenderConversationConfig(auto_drop_analysis=False)))):
        r = subprocess.run([gptoss_bin, "harmony", "render", "--file", str(f), "--ids", *flags],
                           capture_output=True, text=True, check=True)
        assert json.loads(r.stdout) == want, flags


# ---------------------------------------------------------------- random conversations

WORDS = ["the", "weather", "is", "Paris", "42", "  spaced  ", "\n", "\n\n", "tab\there", "émoji 😀", "日本語",
         "quote\"s", "back\\slash", "<|start|>", "<|channel|>", "to=x", "{", "}", "[1, 2]", "// comment", "\r\n",
         "Ωmega", "😀😃", "ok.", "?", "null", "   ", "a-b_c.d", "\u2028", "\u3010ref\u3011"]


def rtext(rng, lo=0, hi=12):
    return "".join(rng.choice(WORDS) + rng.choice(["", " "]) for _ in range(rng.randint(lo, hi)))


def rname(rng):
    return rng.choice(["f", "get_weather", "lookup", "do_it", "x1", "search_docs", "calc", "my_tool"]) + \
        rng.choice(["", "2", "_v"])


def rdefault(rng, kind):
    if kind == "string":
        return rng.choice(["x", "the default", 'with "quotes"', "multi\nline", "ünï", ""])
    if kind in ("number", "integer"):
        return rng.choice([0, 1, -1, 10, 3.5, 1e20, 1.5e-7, 123456.789, -0.25, 2 ** 64 + 5, 1e16, 1e15, 0.001])
    if kind == "boolean":
        return rng.choice([True, False])
    return rng.choice([None, [1, "a"], {"k": [True, None]}, "str", 7])


def rschema(rng, depth=0):
    kinds = ["string", "number", "integer", "boolean", "array", "enum", "typelist", "any", "null", "anyof"]
    if depth < 3:
        kinds += ["object", "object", "oneof"]
    kind = rng.choice(kinds)
    s = {}
    if kind == "string":
        s["type"] = "string"
    elif kind == "enum":
        s = {"type": "string", "enum": rng.sample(["a", "b", "c", "celsius", "x y", 'q"t'], rng.randint(1, 3))}
        if rng.random() < 0.2:
            s["enum"] = [1, 2]
    elif kind in ("number", "integer", "boolean"):
        s["type"] = kind
    elif kind == "array":
        s["type"] = "array"
        if rng.random() < 0.8:
            s["items"] = rschema(rng, depth + 1)
    elif kind == "typelist":
        s["type"] = rng.sample(["string", "integer", "number", "null", "boolean"], rng.randint(1, 3))
    elif kind == "any":
        pass
    elif kind == "null":
        s["type"] = "null"
    elif kind == "anyof":
        s["anyOf"] = [rschema(rng, depth + 1) for _ in range(2)]
    elif kind == "object":
        s = robject(rng, depth)
    elif kind == "oneof":
        s["oneOf"] = [rschema(rng, depth + 1) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.3:
        s["description"] = rtext(rng, 1, 5)
    if rng.random() < 0.2:
        s["nullable"] = rng.choice([True, False])
    if rng.random() < 0.25:
        if "enum" in s:
            s["default"] = rng.choice(s["enum"] + [rdefault(rng, "other")])
        else:
            s["default"] = rdefault(rng, s["type"] if isinstance(s.get("type"), str) else "other")
    if rng.random() < 0.1:
        s["title"] = rtext(rng, 1, 3)
    if rng.random() < 0.1:
        s["examples"] = rng.choice([["ex1", "ex2"], [1, "two"], []])
    return s


def robject(rng, depth=0):
    props = {}
    for _ in range(rng.randint(0, 5)):
        props[rng.choice(["city", "units", "count", "q", "items", "when", "opts", "z", "alpha", "filter"]) +
              rng.choice(["", "_2", "Id"])] = rschema(rng, depth + 1)
    s = {"type": "object"}
    if rng.random() < 0.9:
        s["properties"] = props
    if props and rng.random() < 0.7:
        s["required"] = rng.sample(sorted(props), rng.randint(0, len(props)))
    if rng.random() < 0.2:
        s["description"] = rtext(rng, 1, 4)
    return s


def rtools(rng):
    tools = []
    for _ in range(rng.randint(0, 4)):
        params = None
        r = rng.random()
        if r < 0.7:
            params = robject(rng)
        elif r < 0.85:
            params = rschema(rng)
        tools.append(ToolDescription.new(rname(rng), rtext(rng, 0, 6), parameters=params))
    return tools


def rsystem(rng):
    s = SystemContent.new()
    if rng.random() < 0.2:
        s.model_identity = rng.choice([None, "You are a helpful assistant.", rtext(rng, 1, 6)])
    s.reasoning_effort = rng.choice([ReasoningEffort.LOW, ReasoningEffort.MEDIUM, ReasoningEffort.HIGH, None])
    if rng.random() < 0.6:
        s.conversation_start_date = f"20{rng.randint(20, 30)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if rng.random() < 0.3:
        s.knowledge_cutoff = rng.choice([None, "2023-10", "2021-01"])
    r = rng.random()
    if r < 0.15:
        s.channel_config = None
    elif r < 0.4:
        s.channel_config = ChannelConfig(valid_channels=rng.sample(["analysis", "commentary", "final"], rng.randint(0, 3)),
                                         channel_required=rng.random() < 0.7)
    if rng.random() < 0.3:
        s = s.with_browser_tool()
    if rng.random() < 0.3:
        s = s.with_python_tool()
    if rng.random() < 0.15:
        s = s.with_tools(ToolNamespaceConfig(name=rng.choice(["container", "a_ns", "zeta"]),
                                             description=rng.choice([None, rtext(rng, 1, 8)]), tools=rtools(rng)))
    return s


def rdeveloper(rng):
    d = DeveloperContent.new()
    if rng.random() < 0.7:
        d = d.with_instructions(rtext(rng, 0, 15))
    if rng.random() < 0.7:
        d = d.with_function_tools(rtools(rng))
    if rng.random() < 0.1:
        d = d.with_tools(ToolNamespaceConfig(name="other", description=rtext(rng, 1, 4), tools=rtools(rng)))
    return d


def rassistant(rng, fn_names):
    kind = rng.choice(["analysis", "final", "preamble", "call", "builtin"])
    if kind == "call":
        m = Message.from_role_and_content(Role.ASSISTANT, json.dumps({"a": rtext(rng, 0, 3)}))
        m = m.with_channel("commentary").with_recipient("functions." + rng.choice(fn_names or ["f"]))
        ct = rng.choice(["<|constrain|>json", "json", None, "<|constrain|>"])
        return m.with_content_type(ct) if ct else m
    if kind == "builtin":
        return Message.from_role_and_content(Role.ASSISTANT, rtext(rng)).with_channel(rng.choice(["analysis", "commentary"])) \
            .with_recipient(rng.choice(["browser.search", "python", "browser.open"]))
    ch = {"analysis": "analysis", "final": "final", "preamble": "commentary"}[kind]
    m = Message.from_role_and_content(Role.ASSISTANT, rtext(rng))
    return m.with_channel(ch) if rng.random() < 0.95 else m


def rconversation(rng):
    msgs = []
    fn_names = []
    if rng.random() < 0.8:
        msgs.append(Message.from_role_and_content(Role.SYSTEM, rsystem(rng)))
    if rng.random() < 0.6:
        dev = rdeveloper(rng)
        if dev.tools:
            fn_names = [t.name for ns in dev.tools.values() for t in ns.tools]
        msgs.append(Message.from_role_and_content(Role.DEVELOPER, dev))
    for _ in range(rng.randint(0, 4)):
        user = Message.from_role_and_content(Role.USER, rtext(rng))
        if rng.random() < 0.1:
            user = Message.from_author_and_content(Author.new(Role.USER, rng.choice(["bob", "a b"])), rtext(rng))
        msgs.append(user)
        for _ in range(rng.randint(0, 4)):
            a = rassistant(rng, fn_names)
            msgs.append(a)
            if a.recipient:
                res = Message.from_author_and_content(Author.new(Role.TOOL, a.recipient), rtext(rng))
                if rng.random() < 0.7:
                    res = res.with_recipient("assistant").with_channel(a.channel)
                msgs.append(res)
    return Conversation.from_messages(msgs)


def test_random_conversations(enc, gptoss_bin):
    rng = random.Random(20250805)
    reqs = []
    for _ in range(N_RANDOM):
        conv = rconversation(rng)
        mode = rng.choice(["completion"] * 6 + ["conversation", "training"])
        kw = {"mode": mode, "drop_analysis": rng.choice(["reference", "reference", "none"])}
        if mode == "completion" and rng.random() < 0.1:
            kw["next_role"] = rng.choice(["user", "tool", "system"])
        reqs.append(request(conv, **kw))
        if rng.random() < 0.2 and conv.messages:
            m = rng.choice(conv.messages)
            reqs.append(message_request(m, has_function_tools=rng.random() < 0.5))
    n = compare(enc, gptoss_bin, reqs)
    assert n >= N_RANDOM
