// deepdenoise page: upload, denoise through the REST API, compare and download. No dependencies.
const $ = (id) => document.getElementById(id);
let file = null;
let resultUrl = null;

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function choose(f) {
  file = f;
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
  if (mode === "sigma") form.append("sigma", $("sigma").value);
  if ($("strength").value !== "100") form.append("strength", String($("strength").value / 100));
  if (mode === "poisson" || mode === "real") form.append("noise", mode);
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
    const est = resp.headers.get("X-Sigma-Estimated") === "true" ? "estimated" : "given";
    const kind = resp.headers.get("X-Noise");
    const noise = kind === "poisson"
      ? `Poisson peak ${resp.headers.get("X-Peak")} photons, read noise ${resp.headers.get("X-Read-Sigma")} (${est})`
      : `sigma ${resp.headers.get("X-Sigma")} (${est})` + (kind === "real" ? `, real noise (pixel-shuffle stride ${resp.headers.get("X-PD-Stride")})` : "");
    $("info").textContent = `model ${resp.headers.get("X-Model")}, ${noise}, ${resp.headers.get("X-Elapsed-Ms")} ms`;
    $("result").hidden = false;
    setStatus("done");
  } catch (e) {
    setStatus("error: " + e.message, true);
  } finally {
    $("go").disabled = !file;
  }
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
$("sigma").addEventListener("input", () => { $("sigma-out").textContent = $("sigma").value; });
$("strength").addEventListener("input", () => { $("strength-out").textContent = $("strength").value + "%"; });
$("go").addEventListener("click", run);
$("slider").addEventListener("input", syncSizes);
$("after").addEventListener("load", () => { syncSizes(); zoom(null); });
window.addEventListener("resize", syncSizes);
$("compare").addEventListener("mousemove", zoom);
loadModels();
