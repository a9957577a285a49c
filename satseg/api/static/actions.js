// Buttons with data-url POST to satseg (with the header cross-site forms cannot send), then
// reload the page so it shows what changed. Errors are shown, nothing is retried silently.
// A button with data-confirm asks first by arming itself ("Confirm?", then a second click):
// the Airflow UI's iframe sandbox has no allow-modals, so window.confirm() is not available.
(function () {
  "use strict";
  var toast = document.getElementById("toast");
  function show(text, isError) {
    toast.textContent = text;
    toast.className = isError ? "error" : "";
    toast.hidden = false;
  }
  function detail(body) {
    if (!body || body.detail === undefined) return "request failed";
    var d = body.detail;
    return typeof d === "string" ? d : (d.reason || JSON.stringify(d));
  }
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("button.action");
    if (!btn) return;
    if (btn.dataset.confirm && btn.dataset.armed !== "1") {
      btn.dataset.armed = "1";
      btn.dataset.label = btn.textContent;
      btn.textContent = "Confirm " + btn.dataset.label.toLowerCase() + "?";
      show(btn.dataset.confirm + " Click again to confirm.");
      window.setTimeout(function () {
        if (btn.dataset.armed === "1" && !btn.disabled) {
          btn.dataset.armed = "";
          btn.textContent = btn.dataset.label;
        }
      }, 6000);
      return;
    }
    btn.disabled = true;
    var body = btn.dataset.ref ? JSON.stringify({ ref: btn.dataset.ref }) : "{}";
    fetch(btn.dataset.url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Requested-With": "satseg" },
      body: body
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) {
        if (!r.ok) throw new Error(r.status + ": " + detail(b));
        show("Done: " + JSON.stringify(b));
        window.setTimeout(function () { window.location.reload(); }, 600);
      });
    }).catch(function (e) {
      btn.disabled = false;
      show(e.message, true);
    });
  });
})();
