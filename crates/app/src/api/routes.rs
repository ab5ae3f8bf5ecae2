//! The app's routes in one table, built once from poem-openapi's typed metadata of the
//! operations ([`OpenApi::meta`], the same metadata the OpenAPI document is written from) plus
//! the routes the document does not describe ([`EXTRA_PATHS`]). It answers, for whoever asks:
//!
//! - what an operation needs of its caller: its scopes, and whether a personal access token may
//!   call it ([`RouteTable::needs`], for the security schemes' checker);
//! - the methods a path answers ([`RouteTable::allow`], for a 405's `Allow` and CORS
//!   preflights);
//! - the metrics' `route` label of the pattern the router matched ([`RouteTable::label`]).
//!
//! Every lookup answers `None` for what the table does not hold; the caller decides what that
//! means (an error, `unmatched`, no header).

use std::collections::HashMap;
use std::sync::LazyLock;

use poem::http::Method;
use poem_openapi::OpenApi;
use poem_openapi::registry::MetaApi;
use warden_domain::scope::{Scope, Scopes};

use super::Apis;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Where Swagger UI is served; its assets are nested under it.
pub const DOCS_PATH: &str = "/docs";
/// Where the Prometheus metrics are served (with the API, or on `METRICS_ADDR`).
pub const METRICS_PATH: &str = "/metrics";
/// The routes the app serves besides the document's operations; each answers `GET` only.
pub const EXTRA_PATHS: [&str; 3] = [OPENAPI_PATH, DOCS_PATH, METRICS_PATH];

/// The name of the password login's security scheme in the OpenAPI document.
pub const SCHEME: &str = "OAuth2PasswordBearer";
/// The name of the personal access tokens' security scheme in the OpenAPI document.
pub const PAT_SCHEME: &str = "PersonalAccessToken";

/// What an operation that uses the security schemes needs: its scopes, and whether a personal
/// access token may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// The scopes the token must hold.
    pub scopes: Scopes,
    /// Whether the operation accepts a personal access token, not only a password login's.
    pub personal_tokens: bool,
}

/// One path of the app: its template, the methods it answers, and its segments to match
/// request paths with (`None` for a `{parameter}`, which matches any segment).
#[derive(Debug)]
struct PathEntry {
    template: String,
    allow: String,
    segments: Vec<Option<String>>,
}

impl PathEntry {
    fn matches(&self, path: &[&str]) -> bool {
        self.segments.len() == path.len()
            && self
                .segments
                .iter()
                .zip(path)
                .all(|(want, got)| want.as_deref().is_none_or(|want| want == *got))
    }
}

/// The routes of the app, with what each lookup needs. Build it once ([`RouteTable::app`]);
/// lookups are a hash look-up or a short scan.
#[derive(Debug)]
pub struct RouteTable {
    /// Sorted so that the first match of a request path is the one the router picks: a literal
    /// segment before a parameter (`/users/me` before `/users/{id}`).
    paths: Vec<PathEntry>,
    /// The index in `paths` of each path's shape (its template with anonymous parameters).
    by_shape: HashMap<String, usize>,
    /// What each operation that uses the security schemes needs, by method and shape.
    needs: HashMap<(Method, String), Needs>,
}

static APP: LazyLock<RouteTable> = LazyLock::new(|| RouteTable::of(&<Apis as OpenApi>::meta()));

impl RouteTable {
    /// The app's table: its operations ([`Apis`]) and [`EXTRA_PATHS`], built on first use.
    pub fn app() -> &'static Self {
        &APP
    }

    /// The table of `apis` (poem-openapi's metadata) and [`EXTRA_PATHS`].
    ///
    /// # Panics
    ///
    /// If an operation names a scope the domain does not know: the names come from
    /// `ApiScope`, so that is a bug, found when the app is built in any test.
    pub fn of(apis: &[MetaApi]) -> Self {
        let mut methods: Vec<(String, Vec<&str>)> = EXTRA_PATHS
            .iter()
            .map(|path| ((*path).to_owned(), vec![Method::GET.as_str()]))
            .collect();
        let mut needs = HashMap::new();
        for path in apis.iter().flat_map(|api| &api.paths) {
            let index = match methods.iter().position(|(known, _)| *known == path.path) {
                Some(index) => index,
                None => {
                    methods.push((path.path.clone(), Vec::new()));
                    methods.len() - 1
                }
            };
            for operation in &path.operations {
                methods[index].1.push(operation.method.as_str());
                let personal_tokens = operation
                    .security
                    .iter()
                    .any(|requirement| requirement.contains_key(PAT_SCHEME));
                let scopes = operation
                    .security
                    .iter()
                    .find_map(|requirement| requirement.get(SCHEME));
                if let Some(scopes) = scopes {
                    let scopes = scopes
                        .iter()
                        .map(|name| {
                            Scope::parse(name)
                                .unwrap_or_else(|| panic!("an operation names scope {name:?}"))
                        })
                        .collect();
                    let key = (operation.method.clone(), shape(&path.path));
                    needs.insert(
                        key,
                        Needs {
                            scopes,
                            personal_tokens,
                        },
                    );
                }
            }
        }
        let mut paths: Vec<PathEntry> = methods
            .into_iter()
            .map(|(template, mut methods)| {
                methods.sort_unstable();
                methods.dedup();
                let segments = segments(&template)
                    .map(|segment| (!segment.starts_with('{')).then(|| segment.to_owned()))
                    .collect();
                PathEntry {
                    allow: methods.join(", "),
                    template,
                    segments,
                }
            })
            .collect();
        paths.sort_by_cached_key(|entry| {
            entry
                .segments
                .iter()
                .map(Option::is_none)
                .collect::<Vec<_>>()
        });
        let by_shape = paths
            .iter()
            .enumerate()
            .map(|(index, entry)| (shape(&entry.template), index))
            .collect();
        Self {
            paths,
            by_shape,
            needs,
        }
    }

    /// What the operation at `method` and `pattern` needs, if it uses the security schemes.
    /// `pattern` is a path template, in the document's spelling (`/posts/{id}`) or the router's
    /// (`/posts/:id`).
    pub fn needs(&self, method: &Method, pattern: &str) -> Option<Needs> {
        self.needs.get(&(method.clone(), shape(pattern))).copied()
    }

    /// The `Allow` value of the request path `path` (`GET, POST`: its methods, sorted), if the
    /// app has the path at all. Empty segments are ignored, so a trailing `/` makes no
    /// difference.
    pub fn allow(&self, path: &str) -> Option<&str> {
        let path: Vec<&str> = segments(path).collect();
        self.paths
            .iter()
            .find(|entry| entry.matches(&path))
            .map(|entry| entry.allow.as_str())
    }

    /// The metrics' `route` label of `pattern`, the pattern the router matched: its template as
    /// the document spells it (`/posts/{id}`), or the extra path it is (anything under
    /// [`DOCS_PATH`] is [`DOCS_PATH`]). `None` for anything that is not one of the app's routes.
    pub fn label(&self, pattern: &str) -> Option<&str> {
        let pattern = pattern.trim_end_matches('*').trim_end_matches('/');
        let pattern = if pattern.starts_with(DOCS_PATH) {
            DOCS_PATH
        } else {
            pattern
        };
        self.by_shape
            .get(&shape(pattern))
            .map(|&index| self.paths[index].template.as_str())
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|segment| !segment.is_empty())
}

/// A path template with its parameters made anonymous, so that the document's `/posts/{id}`
/// and the router's `/posts/:param0` compare equal.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with(':') || segment.starts_with('{') {
                "{}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use poem_openapi::registry::Registry;

    use super::*;

    fn scopes(raw: &str) -> Scopes {
        Scopes::parse(raw).unwrap()
    }

    #[test]
    fn operations_need_the_scopes_they_declare() {
        let table = RouteTable::app();
        let needs = |method: Method, pattern: &str| table.needs(&method, pattern);
        let either = |raw| Needs {
            scopes: scopes(raw),
            personal_tokens: true,
        };
        let password = |raw| Needs {
            scopes: scopes(raw),
            personal_tokens: false,
        };
        assert_eq!(
            needs(Method::GET, "/posts/{id}"),
            Some(either("posts:read"))
        );
        assert_eq!(needs(Method::GET, "/posts/:id"), Some(either("posts:read")));
        assert_eq!(
            needs(Method::DELETE, "/posts/:param0"),
            Some(either("posts:write"))
        );
        assert_eq!(needs(Method::GET, "/users/me"), Some(either("profile")));
        assert_eq!(needs(Method::PATCH, "/users/me"), Some(password("profile")));
        assert_eq!(needs(Method::POST, "/logout"), Some(password("")));
        assert_eq!(
            needs(Method::POST, "/introspect"),
            Some(either("tokens:introspect"))
        );
        assert_eq!(needs(Method::POST, "/users"), None);
        assert_eq!(needs(Method::POST, "/login"), None);
        assert_eq!(needs(Method::GET, OPENAPI_PATH), None);
        assert_eq!(needs(Method::PATCH, "/posts"), None);
    }

    #[test]
    fn the_scheme_names_are_the_schemes_the_operations_register() {
        let mut registry = Registry::new();
        <Apis as OpenApi>::register(&mut registry);
        let names: Vec<_> = registry.security_schemes.keys().copied().collect();
        assert_eq!(names, [SCHEME, PAT_SCHEME]);
    }

    #[test]
    fn a_path_allows_its_methods_with_parameters_matching_any_segment() {
        let table = RouteTable::app();
        assert_eq!(table.allow("/posts"), Some("GET, POST"));
        assert_eq!(table.allow("/posts/"), Some("GET, POST"));
        assert_eq!(table.allow("/posts/42"), Some("DELETE, GET, PUT"));
        // A literal segment wins over a parameter, as in the router.
        assert_eq!(table.allow("/users/me"), Some("DELETE, GET, PATCH"));
        assert_eq!(table.allow("/users/42"), Some("GET"));
        assert_eq!(table.allow("/users/me/sessions/7"), Some("DELETE"));
        for extra in EXTRA_PATHS {
            assert_eq!(table.allow(extra), Some("GET"), "{extra}");
        }
        assert_eq!(table.allow("/posts/42/comments"), None);
        assert_eq!(table.allow("/nowhere"), None);
        assert_eq!(table.allow("/"), None);
    }

    #[test]
    fn labels_are_templates_as_the_document_spells_them() {
        let table = RouteTable::app();
        assert_eq!(table.label("/posts/:param0"), Some("/posts/{id}"));
        assert_eq!(table.label("/posts/:id"), Some("/posts/{id}"));
        assert_eq!(table.label("/users/me"), Some("/users/me"));
        assert_eq!(table.label("/users/:id"), Some("/users/{id}"));
        assert_eq!(table.label("/metrics"), Some(METRICS_PATH));
        assert_eq!(table.label("/openapi.json"), Some(OPENAPI_PATH));
        assert_eq!(table.label("/docs/*"), Some(DOCS_PATH));
        assert_eq!(table.label("/docs/oauth-receiver.html"), Some(DOCS_PATH));
        assert_eq!(table.label(""), None);
        assert_eq!(table.label("/"), None);
        assert_eq!(table.label("/no/such/ann@example.com"), None);
    }

    /// The table and the served document come from the same metadata: every path and method of
    /// the document is in the table, with the scopes the document lists.
    #[test]
    fn the_table_agrees_with_the_document() {
        let document: serde_json::Value =
            serde_json::from_str(&super::super::openapi_json()).unwrap();
        let table = RouteTable::app();
        let paths = document["paths"].as_object().unwrap();
        assert_eq!(table.paths.len(), paths.len() + EXTRA_PATHS.len());
        for (path, operations) in paths {
            let operations = operations.as_object().unwrap();
            let mut methods: Vec<String> = operations.keys().map(|m| m.to_uppercase()).collect();
            methods.sort();
            assert_eq!(table.label(path), Some(path.as_str()));
            let entry = &table.paths[table.by_shape[&shape(path)]];
            assert_eq!(entry.allow, methods.join(", "), "{path}");
            for (method, operation) in operations {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let security = operation["security"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let listed = security.iter().find_map(|requirement| {
                    let names = requirement[SCHEME].as_array()?;
                    Some(names.iter().map(|name| name.as_str().unwrap()).collect())
                });
                let expected = listed.map(|names: Vec<&str>| Needs {
                    scopes: scopes(&names.join(" ")),
                    personal_tokens: security.iter().any(|r| r.get(PAT_SCHEME).is_some()),
                });
                assert_eq!(table.needs(&method, path), expected, "{method} {path}");
            }
        }
    }
}
