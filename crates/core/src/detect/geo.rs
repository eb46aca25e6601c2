//! Distances on Earth, for `impossible_travel`: great-circle (haversine) over a spherical
//! Earth of mean radius 6371.0088 km.

use super::observation::Geo;

/// Mean Earth radius (IUGG), in km.
pub(crate) const EARTH_RADIUS_KM: f64 = 6371.0088;
/// Half the Earth's circumference: no two points are further apart than this.
pub(crate) const MAX_SURFACE_DISTANCE_KM: f64 = std::f64::consts::PI * EARTH_RADIUS_KM;

/// Great-circle distance between two points, in km.
pub(crate) fn haversine_km(a: Geo, b: Geo) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let d_lat = lat2 - lat1;
    let d_lon = (b.lon - a.lon).to_radians();
    let h = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_matches_known_distances() {
        let new_york = Geo {
            lat: 40.7128,
            lon: -74.0060,
        };
        let london = Geo {
            lat: 51.5074,
            lon: -0.1278,
        };
        let d = haversine_km(new_york, london);
        assert!((d - 5570.0).abs() < 10.0, "{d}");
        assert_eq!(haversine_km(london, london), 0.0);
        let antipode = haversine_km(
            Geo { lat: 0.0, lon: 0.0 },
            Geo {
                lat: 0.0,
                lon: 180.0,
            },
        );
        assert!((antipode - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
    }
}
