"""The app as an MCP server (gradio[mcp], on by default): its tools through Gradio's schema endpoint and a real
MCP client (streamable HTTP), and one tool call on a teaching example."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from app_server import serve_demo

from demo.handlers import EXAMPLES_DIR
from unmask.pipeline import WEIGHTS_DIR

pytestmark = pytest.mark.skipif(not (WEIGHTS_DIR / "teaching" / "pipeline.json").is_file(),
                                reason="teaching weights not present")
EXAMPLE = EXAMPLES_DIR / "teaching_kn95.png"
TARGET = EXAMPLES_DIR / "targets" / "teaching_kn95.png"
MCP_PATH = "gradio_api/mcp/"
UNMASK_ARGS = ["image", "mask", "mode", "steps", "seed", "model", "aligned", "all_faces"]
VERIFY_ARGS = ["image", "reference", "model", "aligned"]


@pytest.fixture(scope="module")
def url():
    with serve_demo() as served:
        yield served


def data_uri(path: Path) -> str:
    """A file as MCP clients send one to a Gradio tool (a data URI; an http(s) URL works too)."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


async def _session(url: str, work):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(url + MCP_PATH) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        return await work(session)


def mcp(url: str, work):
    """Run ``await work(session)`` in an initialised MCP client session with the app."""
    return asyncio.run(_session(url, work))


def check_tools(tools: dict[str, dict]) -> None:
    """``name -> {"description", "inputSchema"}``: unmask and verify, described for an agent."""
    assert {"unmask", "verify"} <= set(tools)
    unmask, verify = tools["unmask"], tools["verify"]
    assert unmask["description"].startswith("Recover the face under a mask in a photo.")
    assert "guess, never evidence of identity" in unmask["description"]
    assert verify["description"].startswith("Does recovery help recognition?")
    assert "never proof of identity" in verify["description"]
    for tool, args, required in ((unmask, UNMASK_ARGS, ["image"]), (verify, VERIFY_ARGS, ["image", "reference"])):
        properties = tool["inputSchema"]["properties"]
        assert list(properties) == args
        assert set(required) <= set(tool["inputSchema"]["required"])
        assert all(properties[name]["description"] for name in args)  # from the docstring's Args
    assert "white = covered" in unmask["inputSchema"]["properties"]["mask"]["description"]
    assert unmask["inputSchema"]["properties"]["mode"]["enum"] == ["auto", "encoder", "encoder+refine", "optimize"]


def test_schema_endpoint_lists_unmask_and_verify(url):
    import httpx

    response = httpx.get(url + MCP_PATH + "schema", timeout=60)
    assert response.status_code == 200
    tools = {tool["name"]: tool for tool in response.json()}
    check_tools(tools)
    assert tools["unmask"]["meta"]["endpoint_name"] == "unmask" and tools["verify"]["meta"]["endpoint_name"] == "verify"


def test_mcp_client_lists_unmask_and_verify(url):
    async def work(session):
        return (await session.list_tools()).tools

    check_tools({tool.name: {"description": tool.description, "inputSchema": tool.inputSchema}
                 for tool in mcp(url, work)})


def test_mcp_verify_on_a_teaching_example_answers_what_the_api_does(url):
    from gradio_client import Client, handle_file

    async def work(session):
        return await session.call_tool("verify", {"image": data_uri(EXAMPLE), "reference": data_uri(TARGET),
                                                  "model": "teaching", "aligned": True})

    result = mcp(url, work)
    assert not result.isError
    assert [content.type for content in result.content] == ["text"]
    info = json.loads(result.content[0].text)
    assert "teaching embedder" in info["network"] and info["same_person_recovered"]
    expected = Client(url, verbose=False).predict(handle_file(str(EXAMPLE)), handle_file(str(TARGET)), "teaching",
                                                  True, api_name="/verify")
    assert info == json.loads(expected)


def test_mcp_call_with_a_bad_file_returns_the_projects_message(url):
    async def work(session):
        text = "data:text/plain;base64," + base64.b64encode(b"not a photo").decode()
        return await session.call_tool("unmask", {"image": text, "model": "teaching", "aligned": True})

    result = mcp(url, work)
    assert result.isError
    assert "is a text file, not an image; upload a JPEG, PNG or WebP photo" in result.content[0].text
