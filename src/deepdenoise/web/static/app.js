// deepdenoise page: upload, denoise through the REST API, compare and download. No dependencies.
const $ = (id) => document.getElementById(id);
let file = null;
let resultUrl = null;
let estimated = null;  // the level estimated for this file (typical pixel, 0-255)

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function choose(f) {
  file = f;
  estimated = null;
  $("level").disabled = true;
  $("level-out").textContent = "estimated when you denoise";
  $("drop-text").textContent = f ? `${f.name} (${Math.round(f.size / 1024)} kB)` : "Drop an image here";
  $("go").disabled = !f;
}

async function loadModels() {
  try {
    const models = await (await fetch("/api/models")).json();
    for (const m of models) {
      const opt = document.createElement("option");
      opt.value = m.name;
      opt.textContent = m.name;
      $("model").appendChild(opt);
    }
  } catch (e) { setStatus("could not list models: " + e, true); }
}

async function run() {
  const form = new FormData();
  form.append("image", file, file.name);
  const mode = document.querySelector('input[name="mode"]:checked').value;
  const scale = noiseScale();
  if (scale !== null) form.append("noise_scale", scale.toFixed(4));
  if ($("strength").value !== "100") form.append("strength", String($("strength").value / 100));
  form.append("noise", mode);
  if ($("model").value) form.append("model", $("model").value);
  $("go").disabled = true;
  setStatus("denoising...");
  try {
    const resp = await fetch("/api/denoise", { method: "POST", body: form });
    if (!resp.ok) {
      const body = await resp.json().catch(() => ({ detail: resp.statusText }));
      throw new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
    }
    const blob = await resp.blob();
    if (resultUrl) URL.revokeObjectURL(resultUrl);
    resultUrl = URL.createObjectURL(blob);
    $("before").src = URL.createObjectURL(file);
    $("after").src = resultUrl;
    const ext = { "image/png": "png", "image/jpeg": "jpg", "image/tiff": "tif", "image/webp": "webp", "image/bmp": "bmp" }[blob.type] || "png";
    $("download").href = resultUrl;
    $("download").download = file.name.replace(/\.[^.]*$/, "") + "_denoised." + ext;
    showLevel(resp);
    const est = resp.headers.get("X-Sigma-Estimated") === "true" ? "estimated" : "given";
    const kind = resp.headers.get("X-Noise");
    const perPixel = resp.headers.get("X-Noise-Level") ? ", per brightness and channel" : "";
    const scaleText = resp.headers.get("X-Noise-Scale") !== "1" ? `, x${resp.headers.get("X-Noise-Scale")}` : "";
    const noise = kind === "poisson"
      ? `Poisson peak ${resp.headers.get("X-Peak")} photons, read noise ${resp.headers.get("X-Read-Sigma")} (${est})`
      : kind === "impulse"
      ? `impulses in ${(100 * Number(resp.headers.get("X-Impulse-Density"))).toFixed(2)}% of the samples restored`
      : `noise level ${resp.headers.get("X-Sigma")} (${est}${perPixel}${scaleText})` + ((kind === "camera" || kind === "real") ? `, pixel-shuffle stride ${resp.headers.get("X-PD-Stride")}` : "");
    $("info").textContent = `model ${resp.headers.get("X-Model")}, ${noise}, ${resp.headers.get("X-Elapsed-Ms")} ms`;
    $("result").hidden = false;
    setStatus("done");
  } catch (e) {
    setStatus("error: " + e.message, true);
  } finally {
    $("go").disabled = !file;
  }
}

// The slider shows the level the model was given; moving it sends the ratio to the estimate, so an
// estimated noise-level function (brightness by brightness, channel by channel) keeps its shape.
function noiseScale() {
  if (estimated === null || $("level").disabled || estimated <= 0) return null;
  return Math.min(20, Math.max(0.05, Number($("level").value) / estimated));
}

function showLevel(resp) {
  const used = Number(resp.headers.get("X-Sigma"));
  const scale = Number(resp.headers.get("X-Noise-Scale") || "1");
  if (estimated === null) {
    estimated = used / scale;
    $("level").max = String(Math.max(75, Math.ceil(estimated * 3)));
  }
  $("level").disabled = resp.headers.get("X-Noise") === "poisson";
  $("level").value = String(used);
  $("level-out").textContent = Math.abs(used - estimated) < 0.05
    ? `${used.toFixed(1)} (estimated)` : `${used.toFixed(1)} (estimated ${estimated.toFixed(1)})`;
}

function syncSizes() {
  const w = $("before").clientWidth;
  $("after").style.width = w + "px";
  $("after-wrap").style.width = ($("slider").value / 100) * w + "px";
}

function zoom(ev) {
  const img = $("before");
  const rect = img.getBoundingClientRect();
  const sx = img.naturalWidth / rect.width;
  const px = ev ? ev.clientX - rect.left : rect.width / 2;  // no pointer yet: the centre
  const py = ev ? ev.clientY - rect.top : rect.height / 2;
  const x = px * sx - 25;
  const y = py * sx - 25;
  for (const [id, src] of [["zoom-in", img], ["zoom-out", $("after")]]) {
    const ctx = $(id).getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, 200, 200);
    ctx.drawImage(src, x, y, 50, 50, 0, 0, 200, 200);
  }
}

$("file").addEventListener("change", (e) => choose(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); choose(e.dataTransfer.files[0]); });
$("level").addEventListener("input", () => { $("level-out").textContent = `${Number($("level").value).toFixed(1)} (estimated ${estimated.toFixed(1)})`; });
$("level").addEventListener("change", () => { if (file) run(); });
$("strength").addEventListener("input", () => { $("strength-out").textContent = $("strength").value + "%"; });
$("go").addEventListener("click", run);
$("slider").addEventListener("input", syncSizes);
$("after").addEventListener("load", () => { syncSizes(); zoom(null); });
window.addEventListener("resize", syncSizes);
$("compare").addEventListener("mousemove", zoom);
loadModels();
for (const r of document.querySelectorAll('input[name="mode"]')) {
  r.addEventListener("change", () => { estimated = null; $("level").disabled = true; $("level-out").textContent = "estimated when you denoise"; });
}
