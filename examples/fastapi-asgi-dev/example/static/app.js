// The landing page's live parts, in plain JavaScript. A file rather than an inline script, so
// that a Content-Security-Policy of script-src 'self' lets it run.
// - The item form: where it names an API (data-api), it is sent there as JSON and the new item
//   is added to the list. A page on another site cannot send JSON here without this site's
//   consent (CORS), so that form needs no CSRF token. Without data-api it is an ordinary form
//   (Django's, with its CSRF token).
// - On ASGI stacks (an element with data-ws): a WebSocket echo and a stream of Server-Sent Events.
"use strict";

// Adds a line of text to a list; textContent, never HTML: nothing received becomes markup.
function show(list, text, first = false) {
  const line = document.createElement("li");
  line.textContent = text;
  if (first) {
    list.prepend(line);
  } else {
    list.append(line);
  }
}

function itemForm(form) {
  const status = document.getElementById("item-status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let response;
    let answer;
    try {
      response = await fetch(form.dataset.api, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name: form.elements.name.value }),
      });
      answer = await response.json();
    } catch {
      status.textContent = `not added: ${response ? `answered ${response.status}` : "no answer"}`;
      return;
    }
    if (response.status === 201) {
      document.getElementById("no-items")?.remove();
      show(document.getElementById("items"), answer.name, true);
      form.reset();
      status.textContent = "";
    } else {
      const detail = answer.detail;
      status.textContent = Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : detail;
    }
  });
}

function echo(live) {
  const form = document.getElementById("echo");
  const state = document.getElementById("echo-state");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}${live.dataset.ws}`);
  socket.addEventListener("open", () => {
    state.textContent = "open";
    form.elements.send.disabled = false;
  });
  socket.addEventListener("close", () => {
    state.textContent = "closed";
    form.elements.send.disabled = true;
  });
  socket.addEventListener("message", (event) => show(document.getElementById("echoed"), event.data));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    socket.send(form.elements.message.value);
    form.reset();
  });
}

function events(live) {
  const url = new URL(live.dataset.events, location.href);
  const count = Number(url.searchParams.get("count"));
  const state = document.getElementById("events-state");
  const source = new EventSource(url);
  source.addEventListener("open", () => {
    state.textContent = "open";
  });
  source.addEventListener("tick", (event) => {
    const tick = JSON.parse(event.data).tick;
    show(document.getElementById("ticks"), `tick ${tick}`);
    if (tick + 1 >= count) {
      source.close(); // the stream has ended: an EventSource would otherwise reconnect
      state.textContent = `all ${count} received`;
    }
  });
}

const form = document.getElementById("new-item");
if (form?.dataset.api) {
  itemForm(form);
}
const live = document.getElementById("live");
if (live) {
  echo(live);
  events(live);
}
