// The scene map: source imagery, probability and mask as XYZ tiles from satseg's tile
// endpoint, the GeoJSON polygons over them. A multi-class scene shows its class raster
// ("classes", in the class colours) instead of the mask, and each polygon in its class's colour. Georeferenced scenes use Leaflet's Web Mercator
// (no base map: nothing is fetched from the internet); scenes in pixel space use CRS.Simple
// with one map unit per pixel (lat = -row, lng = column), zoom 0 = full resolution.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("map-config").textContent);
  var el = document.getElementById("map");
  var out = cfg.outputs;
  var geo = out.georeferenced;
  var map, bounds, tileOpts;

  function tileUrl(layer) { return cfg.base + "/tiles/" + layer + "/{z}/{x}/{y}.png"; }

  if (geo) {
    var b = out.bounds;
    bounds = L.latLngBounds([[b[1], b[0]], [b[3], b[2]]]);
    map = L.map(el, { attributionControl: false, maxZoom: out.maxzoom + 3 });
    tileOpts = function (info) {
      return { bounds: bounds, minZoom: info.minzoom, maxNativeZoom: info.maxzoom,
               maxZoom: out.maxzoom + 3 };
    };
    L.control.scale().addTo(map);
  } else {
    bounds = L.latLngBounds([[-out.height, 0], [0, out.width]]);
    map = L.map(el, { crs: L.CRS.Simple, attributionControl: false,
                      minZoom: -out.maxzoom - 1, maxZoom: 4 });
    tileOpts = function (info) {
      return { bounds: bounds, zoomOffset: info.maxzoom, minZoom: info.minzoom - info.maxzoom,
               minNativeZoom: -info.maxzoom, maxNativeZoom: 0, maxZoom: 4 };
    };
  }

  function tiles(layer, info, extra) {
    var opts = tileOpts(info);
    for (var k in extra) opts[k] = extra[k];
    var t = L.tileLayer(tileUrl(layer), opts);
    t.on("tileload", function () {
      el.dataset[layer + "Tiles"] = String((+el.dataset[layer + "Tiles"] || 0) + 1);
    });
    return t;
  }

  // the imagery lies below the outputs (tiles go to the tile pane, images above it otherwise)
  map.createPane("imagery").style.zIndex = 150;
  var overlays = {};
  if (cfg.source_kind === "tiles") {
    overlays["source imagery"] = tiles("source", cfg.source, { pane: "imagery" }).addTo(map);
  } else if (cfg.source_kind === "image") {
    overlays["source imagery"] = L.imageOverlay(cfg.base + "/files/source", bounds,
                                                { pane: "imagery" }).addTo(map);
  }
  if (cfg.has_quicklook && cfg.source_kind === "tiles" && cfg.source.minzoom > 0) {
    // below the zoom the source has tiles for (no overviews), its quicklook stands in
    var ql = L.imageOverlay(cfg.base + "/files/quicklook", bounds, { pane: "imagery" });
    var toggle = function () {
      if (map.getZoom() < cfg.source.minzoom) { ql.addTo(map); } else { ql.remove(); }
    };
    map.on("zoomend", toggle);
    map.whenReady(toggle);
  }
  var classes = cfg.classes || [];
  var multiclass = cfg.main === "classes";
  overlays["probability"] = tiles("probability", out, { opacity: 0.9 });
  if (multiclass) {
    overlays["classes"] = tiles("classes", out, { opacity: 0.6 }).addTo(map);
  } else {
    overlays["mask"] = tiles("mask", out, { opacity: 0.7 }).addTo(map);
  }

  function classOf(p) {
    for (var i = 0; i < classes.length; i++) if (classes[i].index === p.class_index) return classes[i];
    return null;
  }
  var polyOpts = { style: function (f) {
                     var c = multiclass ? classOf(f.properties || {}) : null;
                     return { color: c ? c.color : "#ffd60a", weight: 2, fill: true,
                              fillOpacity: 0.05 };
                   },
                   onEachFeature: function (f, layer) {
                     var p = f.properties || {};
                     var text = p.area_m2 !== undefined && p.area_m2 !== null
                               ? p.area_m2.toFixed(1) + " m²"
                               : (p.area_px !== undefined ? p.area_px + " px" : "building");
                     if (multiclass && p["class"] !== undefined) text = p["class"] + ": " + text;
                     layer.bindTooltip(text);
                   } };
  if (!geo) polyOpts.coordsToLatLng = function (c) { return L.latLng(-c[1], c[0]); };
  var polygons = L.geoJSON(null, polyOpts).addTo(map);
  overlays["polygons"] = polygons;
  fetch(cfg.base + "/files/vectors", { credentials: "same-origin" })
    .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
    .then(function (data) {
      polygons.addData(data);
      el.dataset.polygons = String(polygons.getLayers().length);
    })
    .catch(function (e) { el.dataset.polygons = "error " + e.message; });

  L.control.layers(null, overlays, { collapsed: false }).addTo(map);
  map.fitBounds(bounds);
})();
