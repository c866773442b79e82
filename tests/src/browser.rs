//! A real browser for the reports people look at: Debian's `chromium`, headless.

use std::path::Path;
use std::process::Command;

use crate::require_root;

/// Opens a run's `report.html` in a real browser — Debian's `chromium`, headless, in a
/// network namespace of its own (only a loopback that is down: the page must need no
/// network, and the browser's own background requests go nowhere) — and checks what a
/// person would see: a screenshot that is not blank, and no message on the page's console
/// (the page has no script, so any message is a broken page: a failed load, bad markup
/// the parser reports; the browser's own `chrome://` pages' messages are not the page's).
/// Keeps the screenshot beside the report (`report.png`).
pub fn assert_report_renders_in_chromium(run_dir: &Path) {
    require_root();
    let html = run_dir.join("report.html");
    assert!(html.is_file(), "no report.html in {}", run_dir.display());
    let Some(browser) = ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        panic!("NOT RUN: no chromium on PATH (Debian's `chromium`; .ci/run installs it)");
    };
    let shot = run_dir.join("report.png");
    let profile = run_dir.join("chromium-profile");
    let (width, height) = (1200u32, 2400u32);
    let out = Command::new("timeout")
        .args(["-k", "5", "90", "unshare", "--net", browser])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.canonicalize().unwrap().display()))
        .output()
        .expect("running chromium");
    let _ = std::fs::remove_dir_all(&profile);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && shot.is_file(),
        "chromium did not render {}: {}\n{stderr}",
        html.display(),
        out.status
    );
    // the page's messages only: Chromium's own pages log too (seen: "Slow network is
    // detected…", source: chrome://resources/…/composebox_input.js — its UI, with the
    // network down), which say nothing about the report
    let console: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") && !l.contains("source: chrome://"))
        .collect();
    assert!(
        console.is_empty(),
        "the page logged to the console:\n{}",
        console.join("\n")
    );
    // not blank: many pixels drawn, in many colours (text, the charts' lines and bars)
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().expect("a PNG screenshot");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .expect("the screenshot's pixels");
    assert_eq!((info.width, info.height), (width, height));
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let mut drawn = 0usize;
    let mut colours = std::collections::HashSet::new();
    for px in pixels.chunks(channels) {
        if px[..3].iter().any(|c| *c < 240) {
            drawn += 1;
        }
        colours.insert((px[0] >> 3, px[1] >> 3, px[2] >> 3));
    }
    let total = (width * height) as usize;
    assert!(
        drawn * 100 > total * 3 && colours.len() >= 16,
        "the screenshot {} looks blank: {drawn} of {total} pixels drawn, {} colours",
        shot.display(),
        colours.len()
    );
}
