// Report charts: each element with a data-chart attribute holds the chart's data as JSON
// (ui_renderer.charts.chart_data); this file hands it to Apache ECharts. No inline script:
// the Content-Security-Policy forbids it. A type this file does not know draws nothing,
// and the table under it still shows the numbers.
"use strict";

(() => {
  const lang = document.documentElement.lang || "en";
  const numbers = new Intl.NumberFormat(lang, { maximumFractionDigits: 2 });
  const short = new Intl.NumberFormat(lang, { notation: "compact", maximumFractionDigits: 1 });
  const format = (value) => (typeof value === "number" ? numbers.format(value) : String(value ?? ""));

  const axes = (data, horizontal) => {
    const category = {
      type: "category",
      data: data.categories,
      axisLabel: { interval: 0, hideOverlap: true, width: 120, overflow: "truncate" },
    };
    const value = { type: "value", axisLabel: { formatter: (v) => short.format(v) } };
    return horizontal ? { xAxis: value, yAxis: category } : { xAxis: category, yAxis: value };
  };

  const builders = {
    bar: (data) => ({
      ...axes(data, false),
      series: data.series.map((s) => ({ type: "bar", name: s.name, data: s.data })),
    }),
    stacked_bar: (data) => ({
      ...axes(data, false),
      series: data.series.map((s) => ({ type: "bar", stack: "all", name: s.name, data: s.data })),
    }),
    line: (data) => ({
      ...axes(data, false),
      series: data.series.map((s) => ({ type: "line", smooth: true, name: s.name, data: s.data })),
    }),
    area: (data) => ({
      ...axes(data, false),
      series: data.series.map((s) => ({
        type: "line", smooth: true, areaStyle: {}, name: s.name, data: s.data,
      })),
    }),
    pie: (data) => ({
      series: [{
        type: "pie",
        radius: ["35%", "65%"],
        name: data.series[0]?.name ?? "",
        data: data.categories.map((name, i) => ({ name, value: data.series[0]?.data[i] ?? 0 })),
        label: { formatter: "{b}: {d}%" },
      }],
    }),
    funnel: (data) => ({
      series: [{
        type: "funnel",
        sort: "none", // the stages' order, as the report gives it
        min: 0,
        max: Math.max(1, ...(data.series[0]?.data ?? []).map((v) => Number(v) || 0)),
        left: "10%",
        width: "80%",
        name: data.series[0]?.name ?? "",
        data: data.categories.map((name, i) => ({ name, value: data.series[0]?.data[i] ?? 0 })),
        label: { show: true, position: "inside" },
      }],
    }),
  };

  const draw = (element) => {
    let data;
    try {
      data = JSON.parse(element.dataset.chart);
    } catch {
      return;
    }
    const build = builders[data.type];
    if (!build || typeof echarts === "undefined") return;
    const option = build(data);
    option.tooltip = {
      trigger: data.type === "pie" || data.type === "funnel" ? "item" : "axis",
      valueFormatter: format,
    };
    option.legend = { type: "scroll", top: 0 };
    option.grid = { left: 8, right: 16, top: 36, bottom: 8, containLabel: true };
    option.aria = { enabled: true };
    const chart = echarts.init(element, null, {
      renderer: "canvas",
      locale: lang === "zh" ? "ZH" : lang === "ja" ? "JA" : "EN",
    });
    chart.setOption(option);
    new ResizeObserver(() => chart.resize()).observe(element);
  };

  const start = () => document.querySelectorAll("[data-chart]").forEach(draw);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
