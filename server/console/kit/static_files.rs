//! The console's CSS and JavaScript, embedded in the binary so that the appliance serves
//! them offline; each is served with its content type and a cache lifetime.

use actix_web::{HttpResponse, web};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../static/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../static/console.js"),
    },
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../static/htmx.min.js"),
    },
];

/// GET /static/{name}
pub async fn serve(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|a| a.name == name.as_str()) {
        Some(asset) => HttpResponse::Ok()
            .content_type(asset.content_type)
            // An hour: long enough to spare the appliance, short enough that an upgrade's
            // new assets arrive the same morning.
            .insert_header(("Cache-Control", "public, max-age=3600"))
            .body(asset.body),
        None => HttpResponse::NotFound().finish(),
    }
}
