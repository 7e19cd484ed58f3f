// The playground: completions from POST /v1/completions, streamed (server-sent events) into #output.
"use strict";

const $ = (id) => document.getElementById(id);
let controller = null;

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function showError(message) {
  $("error").textContent = message || "";
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return (body.error && body.error.message) || JSON.stringify(body);
  } catch (e) {
    return response.status + " " + response.statusText;
  }
}

async function waitUntilReady() {
  for (;;) {
    try {
      const r = await fetch("/health");
      if (r.ok) break;
      $("status").textContent = "loading the model…";
    } catch (e) {
      $("status").textContent = "server unreachable, retrying…";
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await loadModels();
}

async function loadModels() {
  const r = await fetch("/v1/models", { headers: headers() });
  if (!r.ok) {
    $("status").textContent = r.status === 401 ? "enter the API key" : "could not list the models";
    showError(await errorOf(r));
    return;
  }
  showError("");
  const select = $("model");
  select.innerHTML = "";
  for (const m of (await r.json()).data) {
    const option = document.createElement("option");
    option.value = m.id;
    option.textContent = m.parent ? `${m.id} (adapter on ${m.parent})` : `${m.id} (base)`;
    select.appendChild(option);
  }
  select.disabled = false;
  $("generate").disabled = false;
  $("status").textContent = "ready";
}

function renderStats(tokens, started, firstAt, endedAt, done) {
  const now = endedAt || performance.now();
  const parts = [];
  if (tokens !== null) parts.push(`${tokens} token${tokens === 1 ? "" : "s"}`);
  parts.push(`${((now - started) / 1000).toFixed(2)} s`);
  if (firstAt !== null) {
    parts.push(`first text after ${Math.round(firstAt - started)} ms`);
    const decoding = (now - firstAt) / 1000;
    if (done && tokens && decoding > 0) parts.push(`${(tokens / decoding).toFixed(1)} tokens/s`);
  }
  $("stats").textContent = parts.join(" · ");
}

async function generate(event) {
  event.preventDefault();
  showError("");
  $("output").textContent = "";
  controller = new AbortController();
  $("generate").disabled = true;
  $("stop").disabled = false;
  const body = {
    model: $("model").value,
    prompt: $("prompt").value,
    max_tokens: Number($("max-tokens").value) || 128,
    temperature: Number($("temperature").value) || 0,
    stop_at_function_end: $("function-end").checked,
    language: $("language").value,
    stream: true,
    stream_options: { include_usage: true },
  };
  const started = performance.now();
  let firstAt = null;
  let tokens = null;
  try {
    const r = await fetch("/v1/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal,
    });
    if (!r.ok) {
      showError(await errorOf(r));
      return;
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of message.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) {
            showError(chunk.error.message);
            continue;
          }
          if (chunk.usage) tokens = chunk.usage.completion_tokens;
          for (const choice of chunk.choices || []) {
            if (!choice.text) continue;
            if (firstAt === null) firstAt = performance.now();
            $("output").textContent += choice.text;
          }
        }
      }
      renderStats(tokens, started, firstAt, null, false);
    }
    renderStats(tokens, started, firstAt, performance.now(), true);
  } catch (e) {
    if (e.name === "AbortError") {
      renderStats(null, started, firstAt, performance.now(), false);
      $("stats").textContent += " · stopped";
    } else {
      showError(String(e));
    }
  } finally {
    controller = null;
    $("generate").disabled = false;
    $("stop").disabled = true;
  }
}

$("form").addEventListener("submit", generate);
$("stop").addEventListener("click", () => controller && controller.abort());
$("api-key").addEventListener("change", loadModels);
waitUntilReady();
