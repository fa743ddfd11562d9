// The team board: asks for an API key, then shows that key's workspace, live.
//
// The key lives in sessionStorage (this tab only, gone when it closes) and leaves the page
// only as an Authorization header: EventSource cannot send one, so the event stream is
// read with fetch() and parsed here. Everything the server sends is inserted as text
// (textContent), never as HTML: a task named "<img onerror=...>" is shown as those
// characters.
//
// On each event the board re-reads the three listings (at most once a second) and adds a
// line to the activity feed; between events, reservation countdowns tick from their expiry,
// corrected for the difference between this machine's clock and the server's.
"use strict";

(() => {
  const KEY_ITEM = "coordinator.key";
  const REREAD_EVERY_MS = 30000; // lapsed sessions are not announced: re-read now and then
  const MIN_REREAD_GAP_MS = 1000; // however busy the team, one re-read a second at most
  const BACKOFF_MS = [1000, 2000, 5000, 10000, 30000];
  // The server sends a keepalive every 15 s (by default): a minute of silence is a dead line.
  const SILENCE_MS = 60000;
  const DECISIONS = 20;
  const FEED = 50; // the activity feed keeps the newest 50 events this page saw
  const LISTING_PAGE = 500;
  const LISTING_PAGES = 4; // the board reads at most 2,000 of each listing, then says "N more"
  const AGENT_NAMES = { "claude-code": "Claude Code", cursor: "Cursor", codex: "Codex" };

  const $ = (id) => document.getElementById(id);

  const board = {
    key: null,
    identity: null,
    sessions: [],
    reservations: [],
    decisions: [],
    requests: [], // open requests: a file, its holder, and who queues for it
    unlisted: { agents: 0, reservations: 0 }, // live ones beyond what the board read
    exactExpiry: new Map(), // path -> {session, ms}: the events' to-the-millisecond expiry
    skewMs: 0, // server clock minus ours
    skewFromEvents: false,
    generation: 0, // bumped when the key changes: answers for an older key are dropped
    stream: null, // AbortController of the open event stream
    timers: [],
    tickers: [], // {node, text: () => string}: texts that change with time
  };

  class ApiError extends Error {
    constructor(status, code, message, retryAfterS = 0) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfterS = retryAfterS;
    }
  }

  // -- talking to the service ------------------------------------------------------------

  function authorized(extra = {}) {
    return { Authorization: `Bearer ${board.key}`, ...extra };
  }

  function noteServerDate(response) {
    if (board.skewFromEvents) return;
    const date = Date.parse(response.headers.get("Date") || "");
    // The header is to the second: take the middle of that second.
    if (!Number.isNaN(date)) board.skewMs = date + 500 - Date.now();
  }

  async function failure(response) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      // not one of the API's JSON errors (a proxy's page, say)
    }
    const retryAfter = Number(response.headers.get("Retry-After")) || 0;
    return new ApiError(
      response.status,
      (body && body.error) || `http_${response.status}`,
      (body && body.message) || response.statusText || `HTTP ${response.status}`,
      retryAfter,
    );
  }

  async function getOk(path) {
    let response;
    try {
      response = await fetch(path, { headers: authorized(), cache: "no-store" });
    } catch {
      throw new ApiError(0, "unreachable", "the service does not answer");
    }
    noteServerDate(response);
    if (!response.ok) throw await failure(response);
    return response;
  }

  async function getJson(path) {
    return (await getOk(path)).json();
  }

  // A listing, page after page (its Link header names the next), up to LISTING_PAGES
  // pages: {rows, unlisted}, where unlisted is how many live ones it did not read.
  async function getListing(path) {
    const rows = [];
    let total = 0;
    let next = `${path}?limit=${LISTING_PAGE}`;
    for (let page = 0; next && page < LISTING_PAGES; page += 1) {
      const response = await getOk(next);
      total = Number(response.headers.get("X-Total-Count")) || 0;
      rows.push(...(await response.json()));
      const link = /^<([^>]*)>;\s*rel="next"/.exec(response.headers.get("Link") || "");
      next = link ? link[1] : null;
    }
    return { rows, unlisted: next ? Math.max(0, total - rows.length) : 0 };
  }

  // -- signing in and out -----------------------------------------------------------------

  async function signIn(key) {
    reset();
    const generation = board.generation;
    board.key = key;
    setState("connecting", "connecting…");
    let identity;
    try {
      identity = await getJson("/whoami");
    } catch (error) {
      if (generation !== board.generation) return;
      if (error.status === 401) {
        forget();
        showKeyError(`This key was not accepted: ${error.message}.`);
      } else {
        reset(); // a key kept from before stays kept: the service may just be restarting
        showKeyError(`Could not open the board: ${error.message}. Try again.`);
      }
      return;
    }
    if (generation !== board.generation) return;
    board.identity = identity;
    sessionStorage.setItem(KEY_ITEM, key);
    $("key").value = "";
    $("key-error").hidden = true;
    $("key-form").hidden = true;
    $("board").hidden = false;
    $("forget").hidden = false;
    showIdentity(identity);
    render();
    reread();
    board.timers.push(setInterval(() => scheduleReread(0), REREAD_EVERY_MS));
    board.timers.push(setInterval(tick, 1000));
    follow(generation);
  }

  // Back to no key in use: the stream closed, timers stopped, nothing shown.
  function reset() {
    board.generation += 1;
    if (board.stream) board.stream.abort();
    board.stream = null;
    for (const timer of board.timers) clearInterval(timer);
    board.timers = [];
    clearTimeout(rereadTimer);
    rereadTimer = null;
    board.key = null;
    board.identity = null;
    board.sessions = [];
    board.reservations = [];
    board.decisions = [];
    board.requests = [];
    board.unlisted = { agents: 0, reservations: 0 };
    board.tickers = [];
    board.exactExpiry.clear();
    board.skewFromEvents = false;
    $("activity").replaceChildren();
    showActivityCount();
    $("board").hidden = true;
    $("forget").hidden = true;
    $("workspace").replaceChildren();
    document.title = "Team board · coordinator";
    showNotice(null);
    setState("idle", "");
  }

  // reset(), the key dropped from this tab, and the form back.
  function forget() {
    reset();
    sessionStorage.removeItem(KEY_ITEM);
    $("key-form").hidden = false;
  }

  function keyRefused(error) {
    forget();
    showKeyError(`This key is no longer accepted: ${error.message}.`);
  }

  // -- re-reading the listings ------------------------------------------------------------

  let rereadTimer = null;
  let rereading = false;
  let rereadAgain = false;
  let lastRereadAt = 0;

  function scheduleReread(delayMs = 150) {
    if (rereadTimer !== null) return;
    const wait = Math.max(delayMs, lastRereadAt + MIN_REREAD_GAP_MS - Date.now());
    rereadTimer = setTimeout(() => {
      rereadTimer = null;
      reread();
    }, wait);
  }

  async function reread() {
    if (rereading) {
      rereadAgain = true; // an event came during the read: its answer may predate it
      return;
    }
    rereading = true;
    lastRereadAt = Date.now();
    const generation = board.generation;
    const base = `/workspaces/${encodeURIComponent(board.identity.workspace)}`;
    try {
      const [sessions, reservations, decisions, requests] = await Promise.all([
        getListing(`${base}/sessions`),
        getListing(`${base}/reservations`),
        getJson(`${base}/decisions?limit=${DECISIONS}`),
        getJson(`${base}/requests`),
      ]);
      board.requests = requests;
      if (generation !== board.generation) return;
      board.sessions = sessions.rows;
      board.reservations = reservations.rows;
      board.unlisted = { agents: sessions.unlisted, reservations: reservations.unlisted };
      board.decisions = decisions;
      showNotice(null);
      render();
    } catch (error) {
      if (generation !== board.generation) return;
      if (error.status === 401 || error.status === 403) {
        keyRefused(error);
        return;
      }
      showNotice(`Could not read the board: ${error.message}. Retrying…`);
      scheduleReread(Math.max(5000, error.retryAfterS * 1000));
    } finally {
      rereading = false;
      if (rereadAgain && generation === board.generation) {
        rereadAgain = false;
        scheduleReread();
      }
    }
  }

  // -- the event stream -------------------------------------------------------------------

  async function follow(generation) {
    const path = `/workspaces/${encodeURIComponent(board.identity.workspace)}/events`;
    let failures = 0;
    while (generation === board.generation) {
      const controller = new AbortController();
      board.stream = controller;
      let watchdog = null;
      const heard = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), SILENCE_MS);
      };
      try {
        const response = await fetch(path, {
          headers: authorized({ Accept: "text/event-stream" }),
          cache: "no-store",
          signal: controller.signal,
        });
        if (response.status === 401 || response.status === 403) {
          const error = await failure(response);
          if (generation === board.generation) keyRefused(error);
          return;
        }
        if (!response.ok || !response.body) throw await failure(response);
        noteServerDate(response);
        failures = 0;
        setState("live", "live");
        scheduleReread(0); // whatever happened while we were away
        heard();
        await readEvents(response.body, onEvent, heard);
      } catch {
        // the stream could not open, broke, or went silent: try again below
      } finally {
        clearTimeout(watchdog);
      }
      if (generation !== board.generation) return;
      const wait = BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)];
      failures += 1;
      setState("reconnecting", `reconnecting in ${Math.round(wait / 1000)} s…`);
      await new Promise((resolve) => setTimeout(resolve, wait * (0.8 + 0.4 * Math.random())));
    }
  }

  // Server-sent events (the WHATWG format): lines, blank line ends an event, ":" a comment.
  async function readEvents(body, handle, heard) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let type = "";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      heard();
      buffer += value;
      // A chunk ending in "\r" may have its "\n" in the next one: keep it for then.
      const held = buffer.endsWith("\r") ? "\r" : "";
      const lines = buffer.slice(0, buffer.length - held.length).split(/\r\n|\r|\n/);
      buffer = lines.pop() + held;
      for (const line of lines) {
        if (line === "") {
          if (data.length > 0) handle(type || "message", data.join("\n"));
          type = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let text = colon === -1 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") type = text;
        else if (field === "data") data.push(text);
      }
    }
  }

  function onEvent(type, data) {
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof event.at_ms === "number") {
      // Millisecond-exact, unlike the Date header; late only by the trip here.
      board.skewMs = event.at_ms - Date.now();
      board.skewFromEvents = true;
    }
    if (type === "reserved" && typeof event.expires_at_ms === "number") {
      const claim = claimOf(event.path, event.symbol);
      board.exactExpiry.set(claim, { session: event.session_id, ms: event.expires_at_ms });
    }
    addActivity(type, event);
    scheduleReread();
  }

  // -- drawing ----------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function ticking(node, text) {
    node.textContent = text();
    board.tickers.push({ node, text });
    return node;
  }

  function serverNow() {
    return Date.now() + board.skewMs;
  }

  // A reservation of a whole file is its path; of one symbol in it, path#symbol.
  function claimOf(path, symbol) {
    return symbol ? `${path}#${symbol}` : path;
  }

  function expiryOf(reservation) {
    const listed = Date.parse(reservation.expires_at);
    const exact = board.exactExpiry.get(claimOf(reservation.file_path, reservation.symbol));
    // The listing is to the second; an event's expiry, when it is this same one, is exact.
    if (exact && exact.session === reservation.session_id && Math.abs(exact.ms - listed) < 1000) {
      return exact.ms;
    }
    return listed;
  }

  function countdown(ms) {
    const total = Math.max(0, Math.ceil(ms / 1000));
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const seconds = String(total % 60).padStart(2, "0");
    return hours > 0
      ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}`
      : `${minutes}:${seconds}`;
  }

  function ago(iso) {
    const seconds = Math.max(0, Math.round((serverNow() - Date.parse(iso)) / 1000));
    if (seconds < 10) return "just now";
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return new Date(iso).toLocaleString();
  }

  function render() {
    board.tickers = [];
    const known = new Set(board.reservations.map((r) => claimOf(r.file_path, r.symbol)));
    for (const path of board.exactExpiry.keys()) {
      if (!known.has(path)) board.exactExpiry.delete(path);
    }
    renderList("agents", underParents(board.sessions).map(agentRow));
    const live = board.reservations
      .map((reservation) => ({ reservation, expiry: expiryOf(reservation) }))
      .filter(({ expiry }) => expiry > serverNow())
      .sort((a, b) => a.reservation.file_path.localeCompare(b.reservation.file_path));
    renderList("reservations", live.map(reservationRow));
    renderList("decisions", board.decisions.map(decisionRow));
    renderList("requests", board.requests.map(requestRow));
  }

  // The queue of a requested file: who holds it (or whom it is held for, next in line),
  // then who waits for it, first come first.
  function requestRow(request) {
    const row = el("li");
    row.dataset.path = request.file_path;
    const head = el("div", "head");
    head.append(el("span", "path", request.file_path));
    row.append(head);
    const holder = request.holder ? request.holder.user_name || "someone" : "nobody";
    let held = `held by ${holder}`;
    if (request.next_in_line) held = `held for ${holder} (next in line)`;
    else if (request.via) held += ` as part of ${request.via}`;
    row.append(el("p", "task", held));
    const queue = el("ol", "queue");
    for (const waiter of request.waiters) {
      const line = `${waiter.user_name || "someone"}${waiter.note ? ` — ${waiter.note}` : ""}`;
      const item = el("li", null, line);
      item.append(el("span", "facts", ` · asked ${ago(waiter.requested_at)}`));
      queue.append(item);
    }
    row.append(queue);
    return row;
  }

  function renderList(name, rows) {
    $(name).replaceChildren(...rows);
    $(`${name}-empty`).hidden = rows.length > 0;
    const unlisted = board.unlisted[name] || 0;
    const more = unlisted > 0 ? ` and ${unlisted} more` : "";
    $(`${name}-count`).textContent = rows.length > 0 ? `(${rows.length}${more})` : "";
  }

  // Each subagent right after its parent session, when that is listed too.
  function underParents(sessions) {
    const listed = new Set(sessions.map((s) => s.id));
    const children = new Map();
    for (const s of sessions) {
      if (!listed.has(s.parent_session_id)) continue;
      if (!children.has(s.parent_session_id)) children.set(s.parent_session_id, []);
      children.get(s.parent_session_id).push(s);
    }
    return sessions
      .filter((s) => !listed.has(s.parent_session_id))
      .flatMap((s) => [s, ...(children.get(s.id) || [])]);
  }

  function agentRow(session) {
    const row = el("li");
    row.dataset.session = session.id;
    const head = el("div", "head");
    if (session.parent_session_id) {
      row.className = "subagent";
      head.append(el("span", "who", `↳ subagent ${session.subagent_type || ""}`.trim()));
    } else {
      head.append(el("span", "who", session.user_name || "someone"));
    }
    if (session.agent_type) {
      head.append(el("span", "agent-type", AGENT_NAMES[session.agent_type] || session.agent_type));
    }
    row.append(head);
    row.append(
      session.current_task
        ? el("p", "task", session.current_task)
        : el("p", "task none", "no task given yet"),
    );
    const facts = [];
    if (session.current_file) facts.push(`on ${session.current_file}`);
    if (session.branch) facts.push(`branch ${session.branch}`);
    const held = session.reserved_files.length;
    if (held > 0) facts.push(held === 1 ? "1 file reserved" : `${held} files reserved`);
    if (facts.length > 0) row.append(el("p", "meta", facts.join(" · ")));
    if (session.last_heartbeat) {
      const seen = session.last_heartbeat;
      row.append(ticking(el("p", "meta seen"), () => `seen ${ago(seen)}`));
    }
    return row;
  }

  function reservationRow({ reservation, expiry }) {
    const row = el("li");
    row.dataset.path = reservation.file_path;
    const head = el("div", "head");
    head.append(el("span", "path", claimOf(reservation.file_path, reservation.symbol)));
    const clock = el("span", "countdown");
    clock.title = `until ${new Date(expiry - board.skewMs).toLocaleTimeString()}`;
    head.append(
      ticking(clock, () => {
        const left = expiry - serverNow();
        clock.classList.toggle("soon", left < 60000);
        return countdown(left);
      }),
    );
    row.append(head);
    const holder = reservation.user_name || "someone";
    const task = reservation.current_task;
    row.append(el("p", "meta", task ? `${holder} — ${task}` : holder));
    row.dataset.expiry = String(expiry);
    return row;
  }

  function decisionRow(decision) {
    const row = el("li");
    row.append(el("p", "decision-text", decision.text));
    const who = decision.user_name || "someone";
    const created = decision.created_at;
    row.append(ticking(el("p", "meta"), () => `${who} · ${ago(created)}`));
    return row;
  }

  // -- the activity feed -----------------------------------------------------------------

  // The fields every event has; any other is the event's own.
  const COMMON_FIELDS = new Set(["type", "at_ms", "session_id", "user", "agent"]);

  function shown(value) {
    return typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
  }

  // An event in words. A kind this page does not know still shows: its fields, as they are.
  function activityText(type, event) {
    const who = event.user || "someone";
    const holder = event.holder ? `, held by ${event.holder}` : "";
    switch (type) {
      case "reserved":
        return `${who} claimed ${event.path}`;
      case "released":
        return `${who} released ${event.path}`;
      case "denied":
        return `${event.user_name || who} was denied ${event.path}${holder}`;
      case "requested":
        return `${event.by || who} asked for ${event.path}${holder}`;
      case "handed_off":
        return `${event.path} handed off to ${event.to || "the next in line"}`;
      case "decision":
        return `${who} decided: ${event.text}`;
      case "started": {
        const agent = event.agent ? ` (${AGENT_NAMES[event.agent] || event.agent})` : "";
        return `${who} started${agent}${event.task ? `: ${event.task}` : ""}`;
      }
      case "task":
        return `${who} is now on: ${event.task}`;
      case "ended":
        return `${who}'s session ended${event.reason ? ` (${event.reason})` : ""}`;
      default: {
        const fields = Object.entries(event)
          .filter(([name]) => !COMMON_FIELDS.has(name))
          .map(([name, value]) => `${name} ${shown(value)}`);
        return `${who}: ${type}${fields.length > 0 ? ` — ${fields.join(", ")}` : ""}`;
      }
    }
  }

  function addActivity(type, event) {
    const row = el("li");
    row.dataset.kind = type;
    const atMs = typeof event.at_ms === "number" ? event.at_ms : serverNow();
    // The server's time of the event, shown on this machine's clock.
    const when = el("time", "when", new Date(atMs - board.skewMs).toLocaleTimeString());
    when.dateTime = new Date(atMs).toISOString();
    row.append(when, el("p", "what", activityText(type, event)));
    const feed = $("activity");
    feed.prepend(row);
    while (feed.children.length > FEED) feed.lastElementChild.remove();
    showActivityCount();
  }

  function showActivityCount() {
    const shownRows = $("activity").children.length;
    $("activity-empty").hidden = shownRows > 0;
    $("activity-count").textContent = shownRows > 0 ? `(last ${shownRows})` : "";
  }

  function tick() {
    const now = serverNow();
    const lapsed = board.reservations.filter((r) => expiryOf(r) <= now);
    if (lapsed.length > 0) {
      // Lapses are not announced: drop these here, and ask the server, which also knows
      // of renewals (they are not announced either: a file still in use comes back).
      board.reservations = board.reservations.filter((r) => expiryOf(r) > now);
      render();
      scheduleReread(0);
      return;
    }
    for (const { node, text } of board.tickers) node.textContent = text();
  }

  function showIdentity(identity) {
    const line = $("workspace");
    const name = el("strong", null, identity.workspace_name);
    const slug = identity.workspace_name === identity.workspace ? "" : ` (${identity.workspace})`;
    line.replaceChildren(name, `${slug} · you are ${identity.user_name}`);
    document.title = `${identity.workspace_name} · Team board`;
  }

  function setState(state, text) {
    const node = $("state");
    node.dataset.state = state;
    node.textContent = text;
  }

  function showNotice(text) {
    const node = $("notice");
    node.hidden = !text;
    node.textContent = text || "";
  }

  function showKeyError(text) {
    const node = $("key-error");
    node.textContent = text;
    node.hidden = false;
    $("key-form").hidden = false;
  }

  // -- start ------------------------------------------------------------------------------

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    // A header carries printable ASCII only; fetch() would refuse anything else.
    if (!/^[\x21-\x7e]+$/.test(key)) {
      showKeyError("An API key looks like ek_… (letters, digits, - and _).");
      return;
    }
    signIn(key);
  });
  $("forget").addEventListener("click", () => forget());

  const stored = sessionStorage.getItem(KEY_ITEM);
  if (stored) {
    $("key-form").hidden = true; // no flash of the form while the kept key is checked
    signIn(stored);
  }
})();
