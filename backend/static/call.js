// Liens: calls from a relative's personal page (plain ES2020 module, no framework, no CDN).
//
// Signalling follows docs/calls.md: one WebSocket per page (GET /f/{token}/ws, JSON frames).
// Whoever starts the call, once it is accepted the browser makes the offer, waits until ICE
// gathering is complete (no trickle ICE) and sends it; the tablet (aiortc) answers.
// Every visible sentence comes from the page (translated server-side, #strings): none here.

const root = document.getElementById("liens-call-root");
const S = JSON.parse(document.getElementById("strings").textContent);
const lang = document.documentElement.lang || "fr";
const $ = (id) => document.getElementById(id);

const ui = {
  status: $("call-status"),
  notice: $("call-notice"),
  missed: $("missed"),
  missedList: $("missed-list"),
  residents: $("residents"),
  overlay: $("call"),
  initials: $("call-initials"),
  title: $("call-title"),
  text: $("call-text"),
  remote: $("remote-video"),
  self: $("self-video"),
  answer: $("btn-answer"),
  decline: $("btn-decline"),
  cancel: $("btn-cancel"),
  mic: $("btn-mic"),
  cam: $("btn-cam"),
  hangup: $("btn-hangup"),
  back: $("btn-back"),
};

const ICE_GATHERING_LIMIT_MS = 5000; // then send what was gathered (slow TURN server)
const CONNECT_LIMIT_MS = 30000; // accepted but no media after this: give up
const DISCONNECTED_GRACE_MS = 8000; // ICE "disconnected" may recover; "failed" does not
const ENDED_VIEW_MS = 3500;
const LINK_GONE = 4410; // the backend's close code for a revoked or regenerated link

/** "{name} …" → "Marcel …" (values are inserted as text, never as HTML). */
const fmt = (s, vars = {}) => String(s || "").replace(/\{(\w+)\}/g, (m, k) => (k in vars ? vars[k] : m));

// ---------------------------------------------------------------- state

let ws = null;
let wsReady = false; // a hello has been received on the current socket
let backoff = 1000;
let reconnectTimer = null;
let residents = []; // hello.residents
let iceServers = [];
let pendingCancel = null; // resident id whose call was cancelled before "calling" came back

const idleCall = () => ({
  state: "idle", // idle | dialling | ringing | connecting | connected | ended
  direction: null, // the call log's words: "to_resident" (we called) | "from_resident" (the tablet calls us)
  id: null,
  resident: null, // {id, first_name}
  pc: null,
  local: null, // MediaStream
  media: null, // Promise<MediaStream|null>
  offering: false,
  timers: [],
});
let call = idleCall();

// Test and debugging hook: end-to-end tests read the state and the peer connection's getStats().
window.liensCall = {
  get state() {
    return call.state;
  },
  get pc() {
    return call.pc;
  },
  get callId() {
    return call.id;
  },
  get direction() {
    return call.direction;
  },
  get online() {
    return wsReady;
  },
};

function setState(state) {
  call.state = state;
  root.dataset.callState = state;
}

// ---------------------------------------------------------------- WebSocket

function wsUrl() {
  const path = root.dataset.wsPath || location.pathname.replace(/\/$/, "") + "/ws";
  const url = new URL(path, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("lang", lang);
  return url.href;
}

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  let sock;
  try {
    sock = new WebSocket(wsUrl());
  } catch {
    scheduleReconnect();
    return;
  }
  ws = sock;
  sock.onmessage = (event) => {
    if (ws !== sock) return;
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      return;
    }
    if (msg && typeof msg.type === "string") handle(msg);
  };
  sock.onclose = (event) => {
    if (ws !== sock) return;
    ws = null;
    wsReady = false;
    // Without signalling the call cannot go on (the backend ends it too): back to the list.
    if (call.state !== "idle" && call.state !== "ended") finish("network");
    renderResidents();
    if (event.code === LINK_GONE) {
      // Staff revoked or regenerated this link: it will never work again, say so and stop.
      setStatus(S.link_gone);
      return;
    }
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  if (reconnectTimer) return;
  setStatus(S.reconnecting);
  const delay = backoff * (0.8 + Math.random() * 0.4);
  backoff = Math.min(backoff * 2, 30000);
  reconnectTimer = setTimeout(connect, delay);
}

// Coming back online or to the page: try at once instead of waiting for the backoff.
function reconnectNow() {
  if (!ws && reconnectTimer) {
    backoff = 1000;
    connect();
  }
}
window.addEventListener("online", reconnectNow);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") reconnectNow();
});

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

// ---------------------------------------------------------------- messages from the backend

function handle(msg) {
  switch (msg.type) {
    case "hello":
      wsReady = true;
      backoff = 1000;
      residents = Array.isArray(msg.residents) ? msg.residents : [];
      iceServers = Array.isArray(msg.ice_servers) ? msg.ice_servers : [];
      setStatus("");
      renderResidents();
      renderMissed(Array.isArray(msg.missed) ? msg.missed : []);
      break;
    case "calling":
      if (pendingCancel && msg.resident_id === pendingCancel) {
        pendingCancel = null;
        send({ type: "hangup", call_id: msg.call_id });
      } else if (call.direction === "to_resident" && call.state === "dialling" && !call.id) {
        call.id = msg.call_id;
      }
      break;
    case "refused":
      if (pendingCancel && msg.resident_id === pendingCancel) pendingCancel = null;
      if (call.direction === "to_resident" && call.state === "dialling" && !call.id) {
        finish("policy", { message: msg.message });
      } else if (msg.message) {
        showNotice(msg.message);
      }
      break;
    case "ringing":
      if (isCurrent(msg) && call.direction === "to_resident" && call.state === "dialling") {
        setState("ringing");
        ui.text.textContent = fmt(S.ringing_at, { name: call.resident.first_name });
        startTone("ringback");
      }
      break;
    case "incoming":
      incoming(msg);
      break;
    case "accepted":
      if (isCurrent(msg) && call.direction === "to_resident") startOffer();
      break;
    case "answer":
      if (isCurrent(msg) && call.pc && msg.sdp) {
        call.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp }).catch(() => hangUp("error"));
      }
      break;
    case "ended":
      if (isCurrent(msg)) finish(msg.reason || "hung_up");
      break;
    default:
      break; // unknown types are ignored (a newer backend)
  }
}

const isCurrent = (msg) => Boolean(call.id) && msg.call_id === call.id;

// ---------------------------------------------------------------- the list

function residentName(id, fallback) {
  const r = residents.find((x) => x.id === id);
  return (r && r.first_name) || fallback || "";
}

function initialsOf(name) {
  return (
    String(name || "")
      .split(/[\s-]+/)
      .filter(Boolean)
      .slice(0, 2)
      .map((w) => w[0].toUpperCase())
      .join("") || "?"
  );
}

/** The server renders the cards; hello says who can be called now (the authority). */
function renderResidents() {
  const cards = [...ui.residents.querySelectorAll(".person")];
  const used = new Set();
  for (const r of residents) {
    let card =
      cards.find((c) => !used.has(c) && c.dataset.residentId && c.dataset.residentId === r.id) ||
      cards.find((c) => !used.has(c) && !c.dataset.residentId && c.dataset.firstName === r.first_name);
    if (!card) {
      card = newCard(r);
      ui.residents.append(card);
    }
    used.add(card);
    card.dataset.residentId = r.id;
    card.hidden = false;
    const button = card.querySelector(".btn-call");
    const note = card.querySelector(".availability");
    button.hidden = false;
    button.setAttribute("aria-label", fmt(S.call_name, { name: r.first_name }));
    button.disabled = !wsReady || !r.available || call.state !== "idle";
    button.onclick = () => startOutgoing(r);
    const sentence = r.available ? "" : r.message || fmt(S.unavailable, { name: r.first_name });
    note.textContent = sentence;
    note.hidden = !sentence;
  }
  // Cards hello does not list any more (an approval was withdrawn) disappear.
  for (const c of cards) if (!used.has(c) && wsReady) c.hidden = true;
  if (wsReady) ui.residents.querySelector(".empty")?.toggleAttribute("hidden", residents.length > 0);
  if (!wsReady) for (const b of ui.residents.querySelectorAll(".btn-call")) b.disabled = true;
}

function newCard(r) {
  const tpl = $("person-template");
  const card = tpl.content.firstElementChild.cloneNode(true);
  card.dataset.firstName = r.first_name;
  card.querySelector(".initials").textContent = initialsOf(r.first_name);
  card.querySelector("strong").textContent = r.first_name;
  return card;
}

function renderMissed(missed) {
  ui.missedList.replaceChildren(
    ...missed.map((m) => {
      const li = document.createElement("li");
      li.textContent = fmt(S.missed_call, { name: m.resident_first_name || "", when: formatWhen(m.at) });
      return li;
    }),
  );
  ui.missed.hidden = missed.length === 0;
}

/** "lundi à 15 h 10", "today at 3:10 PM": the relative's own clock, the page's language. */
function formatWhen(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const midnight = (x) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
  const days = Math.round((midnight(new Date()) - midnight(d)) / 86400000);
  let day;
  if (days === 0) day = S.today;
  else if (days === 1) day = S.yesterday;
  else if (days > 1 && days < 7) day = new Intl.DateTimeFormat(lang, { weekday: "long" }).format(d);
  else day = new Intl.DateTimeFormat(lang, { weekday: "long", day: "numeric", month: "long" }).format(d);
  return fmt(S.day_at_time, { day, time: formatTime(d) });
}

function formatTime(d) {
  const parts = new Intl.DateTimeFormat(lang, { hour: "numeric", minute: "2-digit" }).formatToParts(d);
  let seenHour = false;
  return parts
    .map((p) => {
      if (p.type === "hour") seenHour = true;
      if (p.type === "literal" && seenHour && S.time_sep) {
        seenHour = false;
        return S.time_sep; // "15 h 10" in French, "3:10 PM" in English
      }
      return p.value;
    })
    .join("");
}

function setStatus(text) {
  ui.status.textContent = text || "";
  ui.status.hidden = !text;
}

function showNotice(text) {
  ui.notice.textContent = text || "";
  ui.notice.hidden = !text;
}

// ---------------------------------------------------------------- the call overlay

function openOverlay(view, resident) {
  ui.overlay.dataset.view = view;
  ui.overlay.hidden = false;
  document.body.classList.add("calling");
  ui.title.textContent = resident.first_name;
  ui.initials.textContent = initialsOf(resident.first_name);
  showNotice("");
}

function setView(view) {
  ui.overlay.dataset.view = view;
}

function closeOverlay() {
  ui.overlay.hidden = true;
  ui.overlay.dataset.view = "";
  document.body.classList.remove("calling");
  document.title = baseTitle;
}

const baseTitle = document.title;

function startOutgoing(resident) {
  if (call.state !== "idle" || !wsReady || !resident.available) return;
  unlockAudio();
  call = idleCall();
  call.direction = "to_resident";
  call.resident = { id: resident.id, first_name: resident.first_name };
  setState("dialling");
  openOverlay("outgoing", call.resident);
  ui.text.textContent = S.calling;
  renderResidents();
  send({ type: "call", resident_id: resident.id });
  // Ask for the camera now: any permission prompt shows while it rings, not after.
  call.media = getMedia();
  ui.cancel.focus();
}

function incoming(msg) {
  const resident = msg.resident || {};
  if (call.state !== "idle" && call.state !== "ended") {
    send({ type: "decline", call_id: msg.call_id, reason: "busy" });
    return;
  }
  clearTimers();
  call = idleCall();
  call.direction = "from_resident";
  call.id = msg.call_id;
  call.resident = { id: resident.id, first_name: resident.first_name || residentName(resident.id) };
  setState("ringing");
  openOverlay("incoming", call.resident);
  const sentence = fmt(S.incoming, { name: call.resident.first_name });
  ui.title.textContent = sentence; // "Marcel vous appelle", once, in big letters
  ui.text.textContent = "";
  document.title = sentence;
  renderResidents();
  startTone("ring");
  // Open the camera while it rings (a self-view; nothing is sent before "Décrocher"), so that
  // the offer can leave at once when the relative answers.
  call.media = getMedia();
  ui.answer.focus();
}

async function getMedia() {
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia) return null;
  const tries = [
    { audio: { echoCancellation: true, noiseSuppression: true }, video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" } },
    { audio: true }, // no camera (or it is refused): talk anyway, the video line stays
  ];
  for (const constraints of tries) {
    try {
      const stream = await md.getUserMedia(constraints);
      if (call.state === "idle" || call.state === "ended") {
        stream.getTracks().forEach((t) => t.stop()); // the call ended meanwhile
        return null;
      }
      call.local = stream;
      ui.self.srcObject = stream;
      ui.self.play().catch(() => {});
      syncToggles();
      return stream;
    } catch {
      // try the next, smaller request
    }
  }
  return null;
}

async function startOffer() {
  if (call.offering) return;
  call.offering = true;
  stopTone();
  setState("connecting");
  setView("incall");
  ui.title.textContent = call.resident.first_name;
  ui.text.textContent = S.connecting;
  const id = call.id;
  const stream = await (call.media || (call.media = getMedia()));
  if (call.id !== id || call.state !== "connecting") return;
  if (!stream) {
    hangUp("media");
    return;
  }
  call.timers.push(setTimeout(() => call.id === id && call.state === "connecting" && hangUp("network"), CONNECT_LIMIT_MS));

  const pc = new RTCPeerConnection({ iceServers });
  call.pc = pc;
  const audio = stream.getAudioTracks()[0];
  const video = stream.getVideoTracks()[0];
  if (audio) pc.addTrack(audio, stream);
  else pc.addTransceiver("audio", { direction: "sendrecv" });
  if (video) pc.addTrack(video, stream);
  else pc.addTransceiver("video", { direction: "sendrecv" });

  const remote = new MediaStream();
  pc.ontrack = (event) => {
    remote.addTrack(event.track);
    if (ui.remote.srcObject !== remote) ui.remote.srcObject = remote;
    ui.remote.play().catch(() => {});
  };
  let graceTimer = null;
  pc.onconnectionstatechange = () => {
    if (call.pc !== pc) return;
    const s = pc.connectionState;
    if (s === "connected") {
      clearTimeout(graceTimer);
      if (call.state === "connecting") {
        setState("connected");
        ui.text.textContent = "";
        setView("incall");
      }
    } else if (s === "failed") {
      hangUp("network");
    } else if (s === "disconnected") {
      clearTimeout(graceTimer);
      graceTimer = setTimeout(() => call.pc === pc && pc.connectionState !== "connected" && hangUp("network"), DISCONNECTED_GRACE_MS);
      call.timers.push(graceTimer);
    }
  };

  try {
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
  } catch {
    if (call.pc === pc) hangUp("error");
    return;
  }
  if (call.pc !== pc) return;
  send({ type: "offer", call_id: id, sdp: pc.localDescription.sdp });
}

function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      clearTimeout(timer);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, ICE_GATHERING_LIMIT_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** We end the call (hang up, cancel, or a local failure): tell the backend, then finish. */
function hangUp(reason) {
  if (call.state === "idle" || call.state === "ended") return;
  if (call.id) {
    const msg = { type: "hangup", call_id: call.id };
    if (reason === "network" || reason === "media" || reason === "error") msg.reason = reason === "media" ? "error" : reason;
    send(msg);
  } else if (call.direction === "to_resident" && call.resident) {
    pendingCancel = call.resident.id; // "calling" is still on its way: hang up when it comes
  }
  finish(reason);
}

/** The call is over: free the media, say why in one calm sentence, go back to the list. */
function finish(reason, { message } = {}) {
  const ended = call;
  if (ended.state === "idle" || ended.state === "ended") return;
  stopTone();
  clearTimers();
  if (ended.pc) {
    ended.pc.ontrack = null;
    ended.pc.onconnectionstatechange = null;
    ended.pc.close();
  }
  if (ended.local) ended.local.getTracks().forEach((t) => t.stop());
  ui.remote.srcObject = null;
  ui.self.srcObject = null;
  const sentence = message || sentenceFor(reason, ended);
  call = idleCall();
  call.resident = ended.resident;
  call.direction = ended.direction;
  if (!sentence) {
    backToList("");
    return;
  }
  setState("ended");
  ui.title.textContent = (ended.resident && ended.resident.first_name) || "";
  ui.text.textContent = sentence;
  setView("ended");
  ui.back.focus();
  call.timers.push(setTimeout(() => backToList(sentence), ENDED_VIEW_MS));
  ui.back.onclick = () => backToList(sentence);
}

function backToList(sentence) {
  clearTimers();
  const who = call.resident;
  call = idleCall();
  setState("idle");
  closeOverlay();
  renderResidents();
  showNotice(sentence);
  const card = who && [...ui.residents.querySelectorAll(".person")].find((c) => c.dataset.residentId === who.id);
  const button = card && card.querySelector(".btn-call");
  if (button && !button.disabled) button.focus();
}

function sentenceFor(reason, c) {
  const name = (c.resident && c.resident.first_name) || "";
  const out = c.direction === "to_resident";
  const pick = {
    declined: out ? S.end_not_answered : "",
    missed: out ? S.end_not_answered : S.end_missed_in,
    cancelled: out ? S.end_cancelled_out : S.end_cancelled_in,
    hung_up: S.end_hung_up,
    completed: S.end_hung_up,
    policy: S.end_policy,
    busy: S.end_busy,
    unavailable: S.end_unavailable,
    network: S.end_network,
    media: S.end_media,
    error: S.end_error,
  };
  const s = reason in pick ? pick[reason] : S.end_hung_up;
  return fmt(s, { name });
}

function clearTimers() {
  call.timers.forEach(clearTimeout);
  call.timers = [];
}

// ---------------------------------------------------------------- buttons

ui.answer.addEventListener("click", () => {
  if (call.direction !== "from_resident" || call.state !== "ringing") return;
  unlockAudio();
  send({ type: "accept", call_id: call.id });
  document.title = baseTitle;
  // The camera opened while it rang is the one sent: a second request would leave the first
  // stream (and the camera light) on after the call.
  call.media = call.media || getMedia();
  startOffer();
});

ui.decline.addEventListener("click", () => {
  if (call.direction !== "from_resident" || call.state !== "ringing") return;
  send({ type: "decline", call_id: call.id });
  finish("declined");
});

ui.cancel.addEventListener("click", () => hangUp("cancelled"));
ui.hangup.addEventListener("click", () => hangUp("hung_up"));

ui.mic.addEventListener("click", () => {
  const track = call.local && call.local.getAudioTracks()[0];
  if (track) track.enabled = !track.enabled;
  syncToggles();
});

ui.cam.addEventListener("click", () => {
  const track = call.local && call.local.getVideoTracks()[0];
  if (track) track.enabled = !track.enabled;
  syncToggles();
});

function syncToggles() {
  const a = call.local && call.local.getAudioTracks()[0];
  const v = call.local && call.local.getVideoTracks()[0];
  const micOn = Boolean(a && a.enabled);
  const camOn = Boolean(v && v.enabled);
  ui.mic.querySelector(".label").textContent = micOn ? S.mic_on : S.mic_off;
  ui.mic.setAttribute("aria-pressed", String(!micOn)); // pressed = muted
  ui.mic.disabled = !a;
  ui.cam.querySelector(".label").textContent = camOn ? S.cam_on : S.cam_off;
  ui.cam.setAttribute("aria-pressed", String(!camOn));
  ui.cam.disabled = !v;
  ui.overlay.classList.toggle("self-hidden", !camOn);
}

// ---------------------------------------------------------------- sounds (WebAudio, no files)

let audioCtx = null;
let toneTimer = null;

function unlockAudio() {
  const AC = window.AudioContext || window.webkitAudioContext;
  if (!AC) return null;
  try {
    if (!audioCtx) audioCtx = new AC();
    if (audioCtx.state === "suspended") audioCtx.resume().catch(() => {});
  } catch {
    audioCtx = null;
  }
  return audioCtx;
}
// Browsers only let a page make sound after a first touch or click on it.
document.addEventListener("pointerdown", unlockAudio, { capture: true, passive: true });
document.addEventListener("keydown", unlockAudio, { capture: true, passive: true });

function note(ctx, freq, at, length, volume) {
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.type = "sine";
  osc.frequency.value = freq;
  gain.gain.setValueAtTime(0.0001, at);
  gain.gain.exponentialRampToValueAtTime(volume, at + 0.03);
  gain.gain.setValueAtTime(volume, at + Math.max(0.04, length - 0.35));
  gain.gain.exponentialRampToValueAtTime(0.0001, at + length);
  osc.connect(gain).connect(ctx.destination);
  osc.start(at);
  osc.stop(at + length + 0.05);
}

function startTone(kind) {
  stopTone();
  const play = () => {
    const ctx = audioCtx || unlockAudio();
    if (ctx && ctx.state === "running") {
      const t = ctx.currentTime + 0.05;
      if (kind === "ring") {
        // A soft two-note chime, twice, every 3.5 s.
        note(ctx, 659.25, t, 0.5, 0.25);
        note(ctx, 523.25, t + 0.45, 0.8, 0.25);
        note(ctx, 659.25, t + 1.3, 0.5, 0.25);
        note(ctx, 523.25, t + 1.75, 0.8, 0.25);
      } else {
        note(ctx, 440, t, 1.5, 0.06); // "ça sonne": the French ringback, quietly
      }
    }
    if (kind === "ring" && navigator.vibrate) navigator.vibrate([400, 200, 400]);
  };
  play();
  toneTimer = setInterval(play, kind === "ring" ? 3500 : 5000);
}

function stopTone() {
  clearInterval(toneTimer);
  toneTimer = null;
  if (navigator.vibrate) navigator.vibrate(0);
}

// ---------------------------------------------------------------- start

window.addEventListener("pagehide", () => {
  if (call.state !== "idle" && call.state !== "ended") hangUp("hung_up");
});

setState("idle");
setStatus(S.connecting_service);
renderResidents();
connect();
