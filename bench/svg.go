package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// fanoutSVG draws deliveries/s per library, grouped by mode and subscriber count, on a
// logarithmic axis. A run that lost events or dropped subscribers is drawn as a crossed stub.
func fanoutSVG(res []fanoutSummary) string {
	type group struct {
		mode string
		subs int
	}
	var groups []group
	var libs []string
	seen := map[group]bool{}
	seenLib := map[string]bool{}
	maxV, minV := 0.0, math.Inf(1)
	for _, r := range res {
		g := group{r.mode, r.subs}
		if !seen[g] {
			seen[g] = true
			groups = append(groups, g)
		}
		if !seenLib[r.lib] {
			seenLib[r.lib] = true
			libs = append(libs, r.lib)
		}
		if r.perSecond > 0 {
			maxV = max(maxV, r.perSecond)
			minV = min(minV, r.perSecond)
		}
	}
	if maxV == 0 {
		maxV, minV = 10, 1
	}
	lo := math.Pow(10, math.Floor(math.Log10(minV)))
	hi := math.Pow(10, math.Ceil(math.Log10(maxV)))
	if hi <= lo {
		hi = lo * 10
	}
	colors := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"}
	const (
		left, top, plotH = 90.0, 50.0, 320.0
		barW, gap        = 34.0, 40.0
	)
	groupW := float64(len(libs))*barW + gap
	width := left + float64(len(groups))*groupW + 20
	height := top + plotH + 70 + float64(len(libs))*20
	y := func(v float64) float64 {
		return top + plotH - plotH*(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="24" font-size="16" font-weight="bold">Fan-out: event deliveries per second (log scale, higher is better)</text>`+"\n", left)
	for v := lo; v <= hi*1.0001; v *= 10 {
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, width-20, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, siFormat(v))
	}
	for gi, g := range groups {
		x0 := left + float64(gi)*groupW + gap/2
		for li, lib := range libs {
			for _, r := range res {
				if r.lib != lib || r.mode != g.mode || r.subs != g.subs {
					continue
				}
				x := x0 + float64(li)*barW
				if r.perSecond > 0 {
					fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.0f" height="%.1f" fill="%s"><title>%s: %.0f/s</title></rect>`+"\n",
						x, y(r.perSecond), barW-4, top+plotH-y(r.perSecond), colors[li%len(colors)], html.EscapeString(lib), r.perSecond)
					fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`+"\n", x+(barW-4)/2, y(r.perSecond)-4, siFormat(r.perSecond))
				} else {
					fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="#c00">lost</text>`+"\n", x+(barW-4)/2, top+plotH-4)
				}
			}
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s, %d subscribers</text>`+"\n", x0+float64(len(libs))*barW/2, top+plotH+18, g.mode, g.subs)
	}
	fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="black"/>`+"\n", left, width-20, top+plotH, top+plotH)
	for li, lib := range libs {
		ly := top + plotH + 44 + float64(li)*20
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="14" height="14" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n", left, ly-11, colors[li%len(colors)], left+20, ly, html.EscapeString(lib))
	}
	fmt.Fprintf(&b, "</svg>\n")
	return b.String()
}

func siFormat(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}
