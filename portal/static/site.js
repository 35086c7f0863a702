// The portal's only script: the password eye toggle and the wait state of forms that take a moment.
(function () {
  "use strict";

  function setupEye(button) {
    var input = document.getElementById(button.getAttribute("aria-controls"));
    if (!input) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var show = input.type === "password";
      input.type = show ? "text" : "password";
      button.setAttribute("aria-pressed", String(show));
      button.setAttribute("aria-label", show ? "Hide password" : "Show password");
    });
  }

  // Shown from submit until the next page arrives: as long as the request really takes.
  function setupBusy(form) {
    var status = form.querySelector(".busy");
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent) { event.preventDefault(); return; }  // a second click sends nothing
      form.dataset.sent = "1";
      form.setAttribute("aria-busy", "true");
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.setAttribute("aria-disabled", "true"); });
      if (status) { status.textContent = form.getAttribute("data-busy"); }
    });
  }

  function reset() {  // a page restored by the Back button must be usable again
    document.querySelectorAll("form[data-busy]").forEach(function (form) {
      delete form.dataset.sent;
      form.removeAttribute("aria-busy");
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.removeAttribute("aria-disabled"); });
      var status = form.querySelector(".busy");
      if (status) { status.textContent = ""; }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-toggle-password]").forEach(setupEye);
    document.querySelectorAll("form[data-busy]").forEach(setupBusy);
  });
  window.addEventListener("pageshow", function (event) { if (event.persisted) { reset(); } });
}());
