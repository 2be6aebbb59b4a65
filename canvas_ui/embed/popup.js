/*
 * Campaign Canvas popups for any web page: plain JavaScript, no framework, no dependencies.
 *
 * Include it with a `site` API key (POST /api/api-keys {"name": "shop", "role": "site"}) and
 * the visitor's customer id; it asks for the popup of an action, shows it, and reports the
 * view and a button click back (they become popup.view / popup.click events):
 *
 *   <script src="https://campaigns.example.com/embed/popup.js"
 *           data-site-key="cc_..." data-external-id="customer-42" data-action="page_view"></script>
 *
 * `data-profile-id` instead of `data-external-id` names the customer by our id; `data-action`
 * is looked up once the page has loaded (leave it out to only use the API below);
 * `data-base-url` when the API is not where the script comes from. From your own code:
 *
 *   var popups = CampaignCanvasPopups.create({baseUrl: "https://campaigns.example.com",
 *                                             siteKey: "cc_...", externalId: "customer-42"});
 *   popups.trigger("add_to_cart").then(function (popup) { ... });  // the popup shown, or null
 *
 * Safety: every text from the server is put in the page with textContent (never as HTML),
 * links and images must be http(s) URLs, and styles are set through the CSSOM, so the
 * script works under a strict Content-Security-Policy (no inline styles or scripts needed).
 */
(function () {
  "use strict";

  var REPORT_WAIT_MS = 1500;
  var current = document.currentScript;

  function httpUrl(text) {
    try {
      var url = new URL(String(text), window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function element(tag, styles, text) {
    var el = document.createElement(tag);
    for (var name in styles) el.style[name] = styles[name];
    if (text) el.textContent = text;
    return el;
  }

  function Popups(options) {
    if (!options || !options.siteKey) throw new Error("CampaignCanvasPopups: siteKey is required");
    if (!options.profileId && !options.externalId) {
      throw new Error("CampaignCanvasPopups: profileId or externalId is required");
    }
    this.baseUrl = String(options.baseUrl || "").replace(/\/+$/, "");
    this.siteKey = String(options.siteKey);
    this.customer = options.profileId ? { profile_id: String(options.profileId) }
                                      : { external_id: String(options.externalId) };
  }

  /** Ask for the popup of `action` and show it: a promise of the popup shown, or null. */
  Popups.prototype.trigger = function (action) {
    var self = this;
    var query = new URLSearchParams(self.customer);
    query.set("action", action);
    return fetch(self.baseUrl + "/api/popups/next?" + query.toString(), {
      headers: { Authorization: "Bearer " + self.siteKey },
      credentials: "omit",
    }).then(function (response) {
      if (!response.ok) throw new Error("CampaignCanvasPopups: the popup request answered " + response.status);
      return response.json();
    }).then(function (answer) {
      if (!answer.popup) return null;
      self.show(answer.popup);
      return answer.popup;
    });
  };

  /** Report a view or a click (`button`: its id) of `popup`; resolves either way. */
  Popups.prototype.report = function (popup, event, button) {
    var body = { token: popup.token, event: event };
    if (button) body.button = button;
    return fetch(this.baseUrl + "/api/popups/report", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
    }).catch(function () { return null; });
  };

  Popups.prototype.show = function (popup) {
    var self = this;
    var overlay = element("div", {
      position: "fixed", inset: "0", background: "rgba(0,0,0,0.45)", display: "flex",
      alignItems: "center", justifyContent: "center", zIndex: "2147483647",
    });
    overlay.className = "cc-popup-overlay";
    var box = element("div", {
      background: "#fff", color: "#111", maxWidth: "420px", width: "calc(100% - 32px)", borderRadius: "8px",
      padding: "20px", boxShadow: "0 8px 30px rgba(0,0,0,0.3)", fontFamily: "system-ui, sans-serif",
      position: "relative",
    });
    box.className = "cc-popup";
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-modal", "true");
    var close = function () { overlay.remove(); };
    var closer = element("button", {
      position: "absolute", top: "6px", right: "10px", border: "0", background: "none", fontSize: "20px",
      cursor: "pointer",
    }, "\u00d7");
    closer.className = "cc-popup-close";
    closer.setAttribute("aria-label", "Close");
    closer.addEventListener("click", close);
    box.appendChild(closer);
    var image = popup.image && httpUrl(popup.image);
    if (image) {
      var img = element("img", { maxWidth: "100%", display: "block", marginBottom: "12px" });
      img.className = "cc-popup-image";
      img.alt = "";
      img.src = image;
      box.appendChild(img);
    }
    if (popup.title) {
      var title = element("h2", { margin: "0 0 8px", fontSize: "20px" }, popup.title);
      title.className = "cc-popup-title";
      box.appendChild(title);
    }
    if (popup.body) {
      var text = element("p", { margin: "0 0 16px", whiteSpace: "pre-line" }, popup.body);
      text.className = "cc-popup-body";
      box.appendChild(text);
    }
    (popup.buttons || []).forEach(function (button) {
      var el = element("button", { marginRight: "8px", padding: "8px 14px", cursor: "pointer" }, button.label);
      el.className = "cc-popup-button";
      el.setAttribute("data-button-id", String(button.id));
      el.addEventListener("click", function () {
        var target = button.url && httpUrl(button.url);
        close();
        var reported = self.report(popup, "click", String(button.id));
        var waited = new Promise(function (resolve) { setTimeout(resolve, REPORT_WAIT_MS); });
        Promise.race([reported, waited]).then(function () {
          if (target) window.location.assign(target);
        });
      });
      box.appendChild(el);
    });
    overlay.addEventListener("click", function (e) { if (e.target === overlay) close(); });
    overlay.appendChild(box);
    document.body.appendChild(overlay);
    self.report(popup, "view");
  };

  window.CampaignCanvasPopups = {
    create: function (options) { return new Popups(options); },
  };

  if (current && current.getAttribute("data-site-key")) {
    var data = function (name) { return current.getAttribute("data-" + name); };
    var popups = new Popups({
      baseUrl: data("base-url") || new URL(current.src, window.location.href).origin,
      siteKey: data("site-key"), profileId: data("profile-id"), externalId: data("external-id"),
    });
    window.CampaignCanvasPopups.page = popups;
    var action = data("action");
    if (action) {
      var run = function () { popups.trigger(action).catch(function (e) { console.warn(e.message); }); };
      if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
      else run();
    }
  }
})();
