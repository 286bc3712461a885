// Talking to the server: the key (sessionStorage, Bearer header, never a URL), errors, SSE over fetch.
const KEY_STORAGE = "qwenImage.apiKey";
const ENDED = new Set(["succeeded", "failed", "cancelled"]);

export class ApiError extends Error {
  constructor(status, body, retryAfter = null) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.field = error.field ?? null;
    this.retryAfter = retryAfter;
  }
}

export const keys = {
  get: () => sessionStorage.getItem(KEY_STORAGE) || "",
  set: (key) => sessionStorage.setItem(KEY_STORAGE, key),
  clear: () => sessionStorage.removeItem(KEY_STORAGE),
};

/** fetch() with the Bearer key; a 401 tells the page to ask for a key again. */
export async function apiFetch(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = keys.get();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) document.dispatchEvent(new CustomEvent("needkey"));
  return response;
}

async function errorOf(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: keep the status */ }
  const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
  return new ApiError(response.status, body, Number.isFinite(retry) ? retry : null);
}

export async function getJson(path, options = {}) {
  const response = await apiFetch(path, options);
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

export async function postJson(path, body) {
  return getJson(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

/**
 * Submit a task; a full queue (429) shows a countdown and retries once by itself.
 * `onWait(seconds)` is called each second of the wait, and with null when it ends.
 */
export async function submitTask(task, body, onWait) {
  try {
    return await postJson(`/v1/${task}`, body);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 429) throw error;
    for (let left = Math.max(1, error.retryAfter || 2); left > 0; left--) {
      onWait(left);
      await sleep(1000);
    }
    onWait(null);
    return postJson(`/v1/${task}`, body);
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Follow a job until it ends: the SSE stream read through fetch (EventSource cannot send a header),
 * then long-polling if the stream is lost. `onJob` gets every state; `onPolling` says we fell back.
 */
export async function followJob(id, onJob, onPolling, signal) {
  let last = null;
  try {
    const response = await apiFetch(`/v1/jobs/${encodeURIComponent(id)}/events`,
      { headers: { Accept: "text/event-stream" }, signal });
    if (!response.ok || !response.body) throw await errorOf(response);
    for await (const job of readEvents(response.body)) {
      last = job;
      onJob(job);
    }
  } catch (error) {
    if (signal && signal.aborted) return last;
    if (error instanceof ApiError && error.status === 404) throw error;
  }
  if (last && ENDED.has(last.status)) return last;
  onPolling();
  for (;;) {
    if (signal && signal.aborted) return last;
    try {
      last = await getJson(`/v1/jobs/${encodeURIComponent(id)}?wait=20`, { signal });
      onJob(last);
      if (ENDED.has(last.status)) return last;
    } catch (error) {
      if (error instanceof ApiError && error.status < 500 && error.status !== 429) throw error;
      await sleep(2000);  // the server is restarting, or the network is down: try again
    }
  }
}

async function* readEvents(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (event === "job" && data.length) yield JSON.parse(data.join("\n"));
    }
  }
}

export const isEnded = (job) => ENDED.has(job.status);

const blobs = new Map();

/** The image's bytes as a Blob: a signed link (sig=) is fetched as is, anything else with the key. */
export async function imageBlob(image) {
  if (!blobs.has(image.url)) {
    const signed = /[?&]sig=/.test(image.url);
    const promise = (signed ? fetch(image.url) : apiFetch(image.url)).then(async (response) => {
      if (!response.ok) throw await errorOf(response);
      return response.blob();
    });
    promise.catch(() => blobs.delete(image.url));
    blobs.set(image.url, promise);
  }
  return blobs.get(image.url);
}

const objectUrls = new Map();

/** A URL an <img> can show: the signed link itself, or a blob: URL of an authenticated fetch. */
export async function imageSrc(image) {
  if (/[?&]sig=/.test(image.url)) return image.url;
  if (!objectUrls.has(image.url)) objectUrls.set(image.url, URL.createObjectURL(await imageBlob(image)));
  return objectUrls.get(image.url);
}

export function blobToDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}
