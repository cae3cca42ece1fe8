"""The pages: server-rendered HTML for phones (Japanese first, English
available), with inline SVG charts and maps, no JavaScript, cached so that
the last page still shows on a weak signal.

- ``render.render(request, template, context, data_time=...)``: a page with
  its caching headers; templates extend ``base.html``;
- ``i18n``: every word, Japanese and English;
- ``svg_charts.time_series``, ``svg_map.polygon_map``: charts and maps;
- ``colours``: the colour scales with their legends;
- ``site.install(app)``: the page routes, the static files and the error pages.
"""
