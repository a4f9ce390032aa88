// Liens: sending photos from a relative's personal page (plain ES2020 module, no CDN).
//
// Each chosen photo is sent in its own request (POST /f/{token}/photos, multipart: photo,
// caption, resident…) with XMLHttpRequest, whose upload progress events drive the progress bar
// on a phone as on a desktop. The server checks everything for real; the size is checked here
// too only to spare a long upload that would be refused. See docs/photos.md.
// Every visible sentence comes from the page (#photo-strings, translated server-side).

const section = document.getElementById("photos");
const S = JSON.parse(document.getElementById("photo-strings").textContent);
const $ = (id) => document.getElementById(id);
const fmt = (s, vars = {}) => String(s || "").replace(/\{(\w+)\}/g, (m, k) => (k in vars ? vars[k] : m));
const MB = 1024 * 1024;

const ui = {
  form: $("photo-form"),
  input: $("photo-input"),
  chosen: $("photo-chosen"),
  message: $("photo-message"),
  progress: $("photo-progress"),
  bar: $("photo-bar"),
  progressText: $("photo-progress-text"),
  send: $("photo-send"),
  list: $("photo-list"),
  sentTitle: $("photo-sent-title"),
};

let maxBytes = 15 * MB;
let chosen = []; // [{file, caption, error, done, url}]
let sending = false;

// Test and debugging hook: browser tests read the progress seen while sending.
window.liensPhotos = { progress: [], get sending() { return sending; } };

function megabytes(size) {
  return Math.max(1, Math.round(size / MB));
}

function showMessage(text) {
  ui.message.textContent = text || "";
  ui.message.hidden = !text;
}

// ---------------------------------------------------------------- choosing

function renderChosen() {
  ui.chosen.replaceChildren(
    ...chosen.map((item, index) => {
      const li = document.createElement("li");
      li.className = "photo-item" + (item.error ? " has-error" : "") + (item.done ? " done" : "");
      const img = document.createElement("img");
      img.src = item.url;
      img.alt = "";
      img.className = "photo-preview";
      const body = document.createElement("div");
      body.className = "photo-item-body";
      const name = document.createElement("span");
      name.className = "photo-name";
      name.textContent = item.file.name;
      const caption = document.createElement("input");
      caption.type = "text";
      caption.maxLength = 200;
      caption.placeholder = S.caption;
      caption.setAttribute("aria-label", `${S.caption} — ${item.file.name}`);
      caption.value = item.caption;
      caption.disabled = item.done || sending;
      caption.addEventListener("input", () => (item.caption = caption.value));
      body.append(name, caption);
      if (item.error) {
        const error = document.createElement("p");
        error.className = "photo-error";
        error.textContent = item.error;
        body.append(error);
      }
      if (item.done) {
        const ok = document.createElement("p");
        ok.className = "photo-ok";
        ok.textContent = S.sent;
        body.append(ok);
      }
      li.append(img, body);
      if (!item.done && !sending) {
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "btn btn-plain photo-remove";
        remove.textContent = S.remove;
        remove.setAttribute("aria-label", `${S.remove} — ${item.file.name}`);
        remove.addEventListener("click", () => {
          URL.revokeObjectURL(item.url);
          chosen.splice(index, 1);
          renderChosen();
        });
        li.append(remove);
      }
      return li;
    }),
  );
}

function choose(files) {
  chosen = chosen.filter((item) => !item.done);
  for (const file of files) {
    const item = { file, caption: "", error: "", done: false, url: URL.createObjectURL(file) };
    if (file.size > maxBytes) {
      item.error = fmt(S.too_big, { size: megabytes(file.size), limit: megabytes(maxBytes) });
    }
    chosen.push(item);
  }
  showMessage("");
  renderChosen();
}

// ---------------------------------------------------------------- sending

function residentIds() {
  return [...ui.form.querySelectorAll('input[name="resident"]:checked')].map((box) => box.value);
}

function uploadOne(item, residents, onProgress) {
  return new Promise((resolve) => {
    const body = new FormData();
    body.append("photo", item.file, item.file.name);
    body.append("caption", item.caption.trim());
    for (const id of residents) body.append("resident", id);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", ui.form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let answer = {};
      try {
        answer = JSON.parse(xhr.responseText);
      } catch {
        answer = {};
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve({ ok: true });
      else resolve({ ok: false, error: answer.detail || S.network });
    });
    xhr.addEventListener("error", () => resolve({ ok: false, error: S.network }));
    xhr.addEventListener("abort", () => resolve({ ok: false, error: S.network }));
    xhr.send(body);
  });
}

function setProgress(n, total, fraction) {
  const percent = Math.round(fraction * 100);
  ui.bar.value = percent;
  ui.progressText.textContent = fmt(S.sending, { n, total, percent });
  window.liensPhotos.progress.push(percent);
}

async function sendAll(event) {
  event.preventDefault();
  if (sending) return;
  const residents = residentIds();
  const todo = chosen.filter((item) => !item.done && !item.error);
  if (!residents.length) return showMessage(S.choose_resident);
  if (!todo.length) return showMessage(chosen.length ? "" : S.choose_photo);
  showMessage("");
  sending = true;
  ui.send.disabled = true;
  ui.input.disabled = true;
  renderChosen();
  ui.progress.hidden = false;
  const totalBytes = todo.reduce((sum, item) => sum + item.file.size, 0) || 1;
  let doneBytes = 0;
  let ok = 0;
  for (const [index, item] of todo.entries()) {
    setProgress(index + 1, todo.length, doneBytes / totalBytes);
    const result = await uploadOne(item, residents, (fraction) =>
      setProgress(index + 1, todo.length, (doneBytes + fraction * item.file.size) / totalBytes),
    );
    doneBytes += item.file.size;
    if (result.ok) {
      item.done = true;
      ok += 1;
    } else {
      item.error = result.error;
    }
    renderChosen();
  }
  setProgress(todo.length, todo.length, 1);
  sending = false;
  ui.send.disabled = false;
  ui.input.disabled = false;
  ui.input.value = "";
  renderChosen();
  showMessage(ok === todo.length ? S.sent_all : fmt(S.sent_some, { ok, total: todo.length }));
  ui.message.classList.toggle("ok", ok === todo.length);
  await refreshList();
}

// ---------------------------------------------------------------- what was sent

function statusText(photo) {
  if (photo.status === "approved") return fmt(S.approved, { name: photo.resident });
  if (photo.status === "refused") return S.refused;
  return S.pending;
}

function renderList(photos) {
  ui.sentTitle.hidden = photos.length === 0;
  ui.list.replaceChildren(
    ...photos.map((photo) => {
      const li = document.createElement("li");
      li.className = `photo-sent ${photo.status}`;
      li.dataset.photoId = photo.id;
      if (photo.thumb_url) {
        const img = document.createElement("img");
        img.src = photo.thumb_url;
        img.alt = photo.caption || "";
        img.loading = "lazy";
        li.append(img);
      } else {
        const blank = document.createElement("span");
        blank.className = "photo-blank";
        blank.setAttribute("aria-hidden", "true");
        li.append(blank);
      }
      const text = document.createElement("div");
      text.className = "photo-sent-text";
      if (photo.caption) {
        const caption = document.createElement("strong");
        caption.textContent = photo.caption;
        text.append(caption);
      }
      const status = document.createElement("span");
      status.className = "photo-status";
      status.textContent = statusText(photo);
      text.append(status);
      for (const name of photo.liked_by || []) {
        const heart = document.createElement("span");
        heart.className = "photo-heart";
        heart.textContent = fmt(S.liked, { name });
        text.append(heart);
      }
      li.append(text);
      return li;
    }),
  );
}

async function refreshList() {
  try {
    const response = await fetch(section.dataset.url, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const answer = await response.json();
    if (answer.max_bytes) maxBytes = answer.max_bytes;
    renderList(answer.photos || []);
  } catch {
    // Offline for a moment: the list stays as it was and is refreshed later.
  }
}

if (ui.form) {
  ui.input.addEventListener("change", () => choose([...ui.input.files]));
  ui.form.addEventListener("submit", sendAll);
}
refreshList();
// Hearts come back from the tablet at any time: look again now and then while the page is seen.
setInterval(() => {
  if (document.visibilityState === "visible" && !sending) refreshList();
}, 30000);
