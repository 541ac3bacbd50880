// The pi-jobs page: submit a job, follow it live (server-sent events, polling as a fallback),
// download its zip, list recent jobs, and read or search the stored digits (/v1/pi).
// Plain DOM, no framework, no build step.

const TERMINAL = new Set(["complete", "failed", "cancelled"]);
const LABELS = {
  queued: "Queued",
  in_progress: "In progress",
  complete: "Complete",
  failed: "Failed",
  cancelled: "Cancelled",
};
const RECENT_LIMIT = 20;
const DIGITS_SHOWN = 10_000; // of a /v1/pi answer, on the page
const SEARCH_LIMIT = 10;
const HEX = 16;
const RECENT_EVERY_MS = 5000;
const POLL_EVERY_MS = 1000;

const $ = (id) => document.getElementById(id);
let watched = null; // the job being followed: {id, source, timer}
let shown = null; // the id of the job on screen

// The API key, when the server requires one: kept in this browser only.
const KEY_STORAGE = "pi-jobs-api-key";
const apiKey = () => localStorage.getItem(KEY_STORAGE) || "";
const withKey = (headers) => (apiKey() ? { ...headers, Authorization: `Bearer ${apiKey()}` } : headers);

async function call(method, path, body) {
  const options = { method, headers: withKey({ Accept: "application/json" }) };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new Error("The service cannot be reached: try again shortly.");
  }
  const answer = await response.json().catch(() => null);
  if (response.status === 401) {
    $("key-box").open = true;
    const error = new Error("This service requires an API key: enter yours under “API key”.");
    error.status = 401;
    throw error;
  }
  if (!response.ok || !answer || answer.success === false) {
    const error = new Error(answer?.error || `The service answered HTTP ${response.status}.`);
    error.status = response.status;
    throw error;
  }
  return answer;
}

function showMessage(text) {
  const message = $("message");
  message.textContent = text || "";
  message.hidden = !text;
}

function formatSeconds(seconds) {
  if (typeof seconds !== "number" || seconds < 0) return "";
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 90) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 90) return `${minutes} min ${Math.floor(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function formatNum(job) {
  return typeof job.num === "number" ? job.num.toLocaleString() : job.num;
}

function formatTime(iso) {
  if (!iso) return "";
  const time = new Date(iso);
  if (Number.isNaN(time.getTime())) return String(iso);
  return time.toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
}

function downloadLink(id, text) {
  const link = document.createElement("a");
  link.href = `download_pi_job/${id}`;
  link.download = `digits_of_pi_${id}.zip`;
  link.textContent = text;
  link.addEventListener("click", downloadWithKey);
  return link;
}

// A link cannot send the key: with one, the zip is fetched, then saved from memory.
async function downloadWithKey(event) {
  if (!apiKey()) return;
  event.preventDefault();
  const link = event.currentTarget;
  try {
    const response = await fetch(link.href, { headers: withKey({}) });
    if (!response.ok) throw new Error(`The download failed: HTTP ${response.status}.`);
    const saved = document.createElement("a");
    saved.href = URL.createObjectURL(await response.blob());
    saved.download = link.download;
    saved.click();
    setTimeout(() => URL.revokeObjectURL(saved.href), 60_000);
  } catch (error) {
    showMessage(error.message);
  }
}

function render(job) {
  shown = job.job_id;
  $("job").hidden = false;
  $("job-id").textContent = job.job_id;
  const bar = $("job-progress");
  const progress = job.status === "complete" ? 1 : job.progress;
  if (typeof progress === "number") bar.value = progress;
  else if (job.status === "queued" || job.status === "in_progress") bar.removeAttribute("value");
  else bar.value = 0;

  let state = LABELS[job.status] || job.status;
  if (job.status === "in_progress" && typeof job.progress === "number") {
    state += ` — ${Math.floor(job.progress * 100)}%`;
  }
  if (job.status === "in_progress" && typeof job.eta_seconds === "number") {
    state += `, about ${formatSeconds(job.eta_seconds)} left`;
  }
  if (job.status === "complete" && typeof job.duration_seconds === "number") {
    state += ` in ${formatSeconds(job.duration_seconds)}`;
  }
  $("job-state").textContent = state;
  if ($("job-state").dataset.status !== job.status || $("job-announce").dataset.id !== job.job_id) {
    // Screen readers hear each change of status, not every tick of the progress.
    $("job-announce").textContent = `Job ${LABELS[job.status] || job.status}`;
    $("job-announce").dataset.id = job.job_id;
  }
  $("job-state").dataset.status = job.status;

  const details = [
    [job.radix === HEX ? "Hexadecimal digits" : "Decimals", formatNum(job)],
    ["Requested", formatTime(job.requested_at)],
    ["Started", formatTime(job.started_at)],
    ["Finished", formatTime(job.finished_at)],
    ["Digits from", job.digits_source],
    ["Error", job.error],
  ];
  $("job-details").replaceChildren(
    ...details
      .filter(([, value]) => value !== null && value !== undefined && value !== "")
      .flatMap(([name, value]) => {
        const term = document.createElement("dt");
        term.textContent = name;
        const description = document.createElement("dd");
        description.textContent = value;
        return [term, description];
      }),
  );

  const download = $("job-download");
  download.hidden = job.status !== "complete";
  download.href = `download_pi_job/${job.job_id}`;
  download.download = `digits_of_pi_${job.job_id}.zip`;
  $("job-cancel").hidden = TERMINAL.has(job.status);
}

function stopWatching() {
  if (!watched) return;
  watched.source?.close();
  clearTimeout(watched.timer);
  watched = null;
}

function update(current, job) {
  if (watched !== current) return;
  render(job);
  const row = Array.from($("recent-jobs").rows).find((r) => r.dataset.jobId === job.job_id);
  row?.replaceWith(recentRow(job));
  highlightRecent();
  if (TERMINAL.has(job.status)) {
    stopWatching();
    refreshRecent();
  }
}

async function poll(current) {
  if (watched !== current) return;
  try {
    update(current, await call("GET", `pi_job/${current.id}`));
  } catch (error) {
    showMessage(error.message);
    if (error.status === 404) return stopWatching();
  }
  if (watched === current) current.timer = setTimeout(() => poll(current), POLL_EVERY_MS);
}

function watch(id) {
  if (watched?.id === id) return;
  stopWatching();
  showMessage("");
  const current = { id, source: null, timer: 0 };
  watched = current;
  history.replaceState(null, "", `#job=${id}`);
  // EventSource cannot send the key: with one, the page polls.
  if (!("EventSource" in window) || apiKey()) return poll(current);
  const source = new EventSource(`pi_job/${id}/events`);
  current.source = source;
  source.addEventListener("status", (event) => {
    try {
      update(current, JSON.parse(event.data));
    } catch {
      // a malformed event: polling knows better
    }
  });
  source.onerror = () => {
    // The stream broke before the job finished (or is not offered): poll from here on.
    source.close();
    current.source = null;
    poll(current);
  };
}

function highlightRecent() {
  for (const row of $("recent-jobs").rows) {
    row.classList.toggle("current", row.dataset.jobId === shown);
  }
}

function recentRow(job) {
  const row = document.createElement("tr");
  row.dataset.jobId = job.job_id;
  const cells = Array.from({ length: 5 }, () => row.insertCell());
  const link = document.createElement("a");
  link.href = `#job=${job.job_id}`;
  link.className = "id";
  link.title = `Show job ${job.job_id}`;
  link.textContent = job.job_id;
  cells[0].append(link);
  cells[1].className = "number";
  cells[1].textContent = formatNum(job) + (job.radix === HEX ? " hex" : "");
  const badge = document.createElement("span");
  badge.className = `badge ${job.status}`;
  badge.textContent = LABELS[job.status] || job.status;
  if (job.status === "in_progress" && typeof job.progress === "number") {
    badge.textContent += ` ${Math.floor(job.progress * 100)}%`;
  }
  cells[2].append(badge);
  cells[3].textContent = formatTime(job.requested_at);
  if (job.status === "complete") cells[4].append(downloadLink(job.job_id, "zip"));
  return row;
}

let recentTimer = 0;
async function refreshRecent() {
  clearTimeout(recentTimer);
  try {
    const page = await call("GET", `pi_jobs?limit=${RECENT_LIMIT}`);
    const jobs = Array.isArray(page.jobs) ? page.jobs : [];
    $("recent-jobs").replaceChildren(...jobs.map(recentRow));
    $("recent").hidden = jobs.length === 0;
    $("recent-empty").hidden = jobs.length !== 0;
    $("recent-empty").textContent = "No jobs yet.";
    highlightRecent();
  } catch (error) {
    $("recent-empty").hidden = false;
    $("recent-empty").textContent = `Recent jobs are unavailable: ${error.message}`;
  }
  recentTimer = setTimeout(refreshRecent, RECENT_EVERY_MS);
}

// "1000", "1,000,000", "1_000", "1e6" or "2.5e3": that whole number (a BigInt); else null.
function wholeNumber(text) {
  const match = /^(\d+)(?:\.(\d*))?(?:e\+?(\d{1,3}))?$/i.exec(text.replace(/[\s,_]/g, ""));
  if (!match) return null;
  const [, whole, fraction = "", exponent = "0"] = match;
  const shift = Number(exponent) - fraction.length;
  const digits = BigInt(whole + fraction);
  if (shift >= 0) return digits * 10n ** BigInt(shift);
  const unit = 10n ** BigInt(-shift);
  return digits % unit === 0n ? digits / unit : null;
}

// The largest num the server takes (it writes it into the page); null if not told.
function maxNum() {
  const max = $("num").dataset.max;
  return /^\d+$/.test(max) ? BigInt(max) : null;
}

// What is wrong with the number typed, in words; null if nothing is.
function numProblem(text, num) {
  const max = maxNum();
  const range = max ? `from 1 to ${max.toLocaleString()}` : "of at least 1";
  if (!text) return `Enter how many decimals of pi you want: a whole number ${range}.`;
  if (num === null) {
    return `“${text}” is not a whole number. Enter one ${range}, like 1000, 1,000,000 or 1e6.`;
  }
  if (num < 1n) return `At least 1 decimal: enter a whole number ${range}.`;
  if (max && num > max) {
    const shown = num.toString().length <= 15 ? num.toLocaleString() : text;
    return `Too many decimals: ${shown}. This service computes at most ${max.toLocaleString()}.`;
  }
  return null;
}

function showRange() {
  const max = maxNum();
  if (max) $("num-hint").textContent = `A whole number from 1 to ${max.toLocaleString()}, like 1000, 1,000,000 or 1e6.`;
}

async function submit(event) {
  event.preventDefault();
  const input = $("num");
  const text = input.value.trim();
  const num = wholeNumber(text);
  const problem = numProblem(text, num);
  if (problem) {
    showMessage(problem);
    input.focus();
    return;
  }
  const button = $("submit-button");
  button.disabled = true;
  showMessage("");
  try {
    const radix = Number($("radix").value);
    const asked = radix === HEX ? { num: Number(num), radix } : { num: Number(num) };
    const answer = await call("POST", "pi_job", asked);
    watch(answer.job_id);
    refreshRecent();
  } catch (error) {
    // A refused number in the API's words (another limit than this page knows, say).
    const refused = error.status === 422 ? `The service refused ${num.toLocaleString()} decimals: ` : "";
    showMessage(refused + error.message);
  } finally {
    button.disabled = false;
  }
}

function showRadix() {
  const hex = Number($("radix").value) === HEX;
  document.querySelector("label[for='num']").textContent = hex
    ? "Number of hexadecimal digits"
    : "Number of decimals";
}

function exploreMessage(text) {
  $("explore-message").textContent = text || "";
  $("explore-message").hidden = !text;
}

// Digits at [start, start + count), with the `marked` positions highlighted.
async function showDigits(start, count, marked = null) {
  const radix = $("digits-radix").value;
  const answer = await call("GET", `v1/pi?start=${start}&numberOfDigits=${count}&radix=${radix}`);
  const text = answer.content.slice(0, DIGITS_SHOWN);
  const output = $("digits-output");
  if (marked && marked.start >= start && marked.start - start < text.length) {
    const from = marked.start - start;
    const mark = document.createElement("mark");
    mark.textContent = text.slice(from, from + marked.length);
    output.replaceChildren(text.slice(0, from), mark, text.slice(from + marked.length));
  } else {
    output.replaceChildren(text);
  }
  if (answer.content.length > text.length) {
    output.append(`… (${answer.content.length.toLocaleString()} digits in the answer)`);
  }
  output.hidden = false;
}

async function readDigits(event) {
  event.preventDefault();
  exploreMessage("");
  const start = wholeNumber($("digits-start").value.trim() || "0");
  const count = wholeNumber($("digits-count").value.trim() || "100");
  if (start === null || count === null) {
    exploreMessage("Position and digits are whole numbers, like 0 and 100.");
    return;
  }
  try {
    await showDigits(start, count);
  } catch (error) {
    exploreMessage(error.message);
  }
}

async function search(event) {
  event.preventDefault();
  exploreMessage("");
  const query = $("search-q").value.trim();
  const radix = $("digits-radix").value;
  const result = $("search-result");
  try {
    const found = await call(
      "GET",
      `v1/pi/search?q=${encodeURIComponent(query)}&radix=${radix}&limit=${SEARCH_LIMIT}`,
    );
    const searched = `${found.digits_searched.toLocaleString()} of ${found.digits_stored.toLocaleString()} stored positions searched.`;
    if (found.positions.length === 0) {
      result.replaceChildren(`“${found.q}” is not in the stored digits. ${searched}`);
      return;
    }
    const links = found.positions.map((position) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      button.textContent = position.toLocaleString();
      button.title = `Show the digits around position ${position}`;
      button.addEventListener("click", () => {
        const start = Math.max(0, position - 20);
        $("digits-start").value = String(start);
        $("digits-count").value = String(found.q.length + 40);
        showDigits(start, found.q.length + 40, { start: position, length: found.q.length }).catch(
          (error) => exploreMessage(error.message),
        );
      });
      return button;
    });
    result.replaceChildren(`“${found.q}” is at position`, ...links, `. ${searched}`);
    links[0].click();
  } catch (error) {
    result.replaceChildren();
    exploreMessage(error.message);
  }
}

async function cancel() {
  if (!watched) return;
  const id = watched.id;
  try {
    await call("DELETE", `pi_job/${id}`);
    const job = await call("GET", `pi_job/${id}`);
    if (watched?.id === id) update(watched, job);
    else render(job);
  } catch (error) {
    showMessage(error.message);
  }
}

function watchFromHash() {
  const match = /^#job=([0-9a-f]{32})$/.exec(location.hash);
  if (match) watch(match[1]);
}

function saveKey(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
  $("key-state").textContent = key ? "Saved in this browser." : "No key: fine for a local service.";
  showMessage("");
  refreshRecent();
}

$("api-key").value = apiKey();
$("key-form").addEventListener("submit", saveKey);
$("job-download").addEventListener("click", downloadWithKey);
$("submit-form").addEventListener("submit", submit);
$("radix").addEventListener("change", showRadix);
$("digits-form").addEventListener("submit", readDigits);
$("search-form").addEventListener("submit", search);
$("job-cancel").addEventListener("click", cancel);
window.addEventListener("hashchange", watchFromHash);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refreshRecent();
});
showRange();
watchFromHash();
refreshRecent();
