/* Render the lifecycle diagram with the vendored Mermaid (no inline script: the CSP forbids it). */
(function () {
  if (!window.mermaid) { return; }
  window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "default" });
  window.mermaid.run({ querySelector: "pre.mermaid" }).then(function () {
    document.querySelectorAll("pre.mermaid").forEach(function (el) { el.setAttribute("data-rendered", "yes"); });
  });
})();
