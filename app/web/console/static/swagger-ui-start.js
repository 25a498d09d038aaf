// Starts Swagger UI from a file rather than an inline script, so that the page runs under a
// strict Content-Security-Policy. BaseLayout, not StandaloneLayout: the standalone top bar
// injects an inline <style> that the policy blocks. validatorUrl null: the default badge would
// send the document to a validator on another host.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  var config = Object.assign(
    {
      url: root.dataset.specUrl,
      domNode: root,
      layout: "BaseLayout",
      presets: [window.SwaggerUIBundle.presets.apis],
      validatorUrl: null,
      deepLinking: false,
    },
    JSON.parse(root.dataset.config || "{}")
  );
  window.ui = window.SwaggerUIBundle(config);
});
